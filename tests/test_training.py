"""fmbench.models.training: one trace of the training step per model, and promotions start Adam afresh."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmbench import backend
from fmbench.models import mlp, training

pytestmark = pytest.mark.e2e  # every test here trains (a tiny MLP, an epoch or two)

BATCH = 64


def _count_traces(model) -> list:
    """Replaces the model's train_step by one that notes each time the backend traces it (JAX's takes the state
    too)."""
    traces, train_step = [], model.train_step

    def counted(*args):
        traces.append(1)
        return train_step(*args)

    model.train_step = counted
    return traces


def test_a_fit_traces_the_training_step_once(subset_split) -> None:
    backend.clear_session()
    # Whole batches only: JAX compiles the step anew for a last, smaller batch (another shape), TensorFlow does not.
    whole = len(subset_split.y_train) // BATCH * BATCH
    x, y = subset_split.x_train[:whole], subset_split.y_train[:whole]
    if backend.name() == "tensorflow":
        plain = mlp.make_model(mlp.BASELINE_HPS)
        plain_traces = _count_traces(plain)
        plain.fit(x, y, epochs=1, batch_size=BATCH, verbose=0)
        # Twice on a CPU; on a GPU, where Keras compiles the step with XLA, at least as often. (Keras's JAX trainer
        # builds the optimizer before its first trace: it traces once without fmbench's fit.)
        assert len(plain_traces) >= 2, "Keras's own fit traces the step again after creating Adam's slots"

    model = mlp.make_model(mlp.BASELINE_HPS)
    traces = _count_traces(model)
    training.fit(model, x, y, epochs=2, batch_size=BATCH, verbose=0)
    assert len(traces) == 1


def test_a_model_given_its_parents_weights_starts_its_optimizer_afresh(subset_split, tmp_path) -> None:
    # What a Hyperband promotion does: load the parent's checkpoint into a newly made model, then train on.
    backend.clear_session()
    x, y = subset_split.x_train, subset_split.y_train
    parent = mlp.make_model(mlp.BASELINE_HPS)
    training.fit(parent, x, y, epochs=1, batch_size=BATCH, verbose=0)
    checkpoint = tmp_path / "parent.weights.h5"
    parent.save_weights(checkpoint)

    child = mlp.make_model(mlp.BASELINE_HPS)
    child.load_weights(checkpoint)
    np.testing.assert_array_equal(child.weights[0].numpy(), parent.weights[0].numpy())
    training.fit(child, x, y, epochs=1, batch_size=BATCH, verbose=0)
    assert int(child.optimizer.iterations) == math.ceil(len(y) / BATCH), (
        "Adam's steps count from 0, not from the parent's"
    )
