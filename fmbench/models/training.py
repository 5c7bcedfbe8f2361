"""How every model here is trained: Keras's fit, with the training step traced once instead of twice.

Without a distribution strategy, Keras's TensorFlow trainer defers building the optimizer to the first trace
of the training step, so Adam's slot variables are created inside that trace; tf.function must then trace
the whole step a second time, one that creates no variables (tf.function's rule for variables made on a first
call). That second trace repeats the costliest part of a small trial's first epoch. Built before the fit,
the slots start at the same zeros as they would inside the trace, so the same updates are made
(benchmarks/test_trial_cost.py checks the accuracies match keras-tuner's stock trials and measures the saving).
"""

from __future__ import annotations

import keras


def fit(model: keras.Model, x, y, **fit_kwargs) -> keras.callbacks.History:
    """model.fit(x, y, **fit_kwargs), with the optimizer built first.

    Built here, just before training, and not when the model is made: a Hyperband promotion loads its
    parent's weights into the freshly made model, and a built optimizer would load the parent's Adam state
    with them. keras-tuner's promotions start the optimizer afresh, and so do ours.
    """
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model.fit(x, y, **fit_kwargs)
