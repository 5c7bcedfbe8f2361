"""The MLP every tuner of the mlp space trains (its space is fmbench.space.MLP), and the hand-picked baseline in it."""

from __future__ import annotations

import keras

from fmbench import space
from fmbench.data import NUM_CLASSES

# The TensorFlow "Basic classification" tutorial model (tensorflow.org/tutorials/keras/classification):
# Flatten -> Dense(128, relu) -> Dense(10), Adam at Keras's default 1e-3, about 88% test accuracy
# after 10 epochs. It is a point of the search space, so tuned and baseline models differ only by tuning.
BASELINE_HPS = {"num_layers": 1, "units_0": 128, "dropout_0": 0.0, "learning_rate": 1e-3}

# Training steps per call into TensorFlow. Small models spend most of an epoch in per-step Python and
# dispatch overhead; 16 steps per call trains the same batches in the same order with the same updates
# (benchmarks/test_trial_cost.py checks the accuracies match) at a fraction of the overhead.
STEPS_PER_EXECUTION = 16


def make_model(values: dict, metrics: tuple[str, ...] = ()) -> keras.Model:
    """A compiled MLP from plain hyperparameter values (keys as in build_model; extra keys ignored).

    No metrics by default: models are scored after training (fmbench.models.scoring), and a metric in the
    compiled step only adds to its tracing, the floor every trial pays. Pass ("accuracy",) where
    Keras's own per-epoch validation is read (Optuna's pruning callback).
    """
    # Built layer by layer through the functional API: Sequential.add rebuilds the whole model at every layer.
    # Each layer is still made and built in the same order, so the same seed gives the same initial weights
    # and dropout masks as Sequential.add did.
    images = keras.Input(shape=(28, 28))
    x = keras.layers.Flatten()(images)
    for i in range(int(values["num_layers"])):
        x = keras.layers.Dense(int(values[f"units_{i}"]), activation="relu")(x)
        if values[f"dropout_{i}"] > 0:
            x = keras.layers.Dropout(float(values[f"dropout_{i}"]))(x)
    model = keras.Model(images, keras.layers.Dense(NUM_CLASSES)(x))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=float(values["learning_rate"])),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def build_model(hp) -> keras.Model:
    """keras-tuner hypermodel: the MLP space of fmbench.space, declared whole before the first trial.

    Every layer's knobs are declared, each conditional on the layer count: keras-tuner then activates every
    condition while it sets the tuner up (Tuner._activate_all_conditions), so its oracle samples the whole
    space from the first trial on. Declared only when a trial first asks for layer k, they took their
    defaults (32 units, no dropout) in that trial.
    """
    return make_model(space.declare_keras_tuner(space.MLP, hp))


active_values = space.MLP.active  # the hyperparameters that shaped the model, without keras-tuner's bookkeeping
