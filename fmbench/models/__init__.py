"""The search spaces (the MLP of mlp.py, keras-tuner's HyperResNet / HyperXception in cnn.py), and how a
Keras model is trained, scored and its TensorFlow state cleared between trials."""

from __future__ import annotations

from fmbench.spec import RunSpec


def space_of(spec: RunSpec):
    """The module of the spec's search space: build_model, make_model, BASELINE_HPS, active_values."""
    if spec.space == "cnn":
        from fmbench.models import cnn

        return cnn
    from fmbench.models import mlp

    return mlp
