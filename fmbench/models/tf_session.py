"""A fresh Keras session between trials and runs, without the traced graphs TensorFlow never frees.

Every traced training step registers a gradient for the optimizer's all-reduce in TensorFlow's global
gradient registry (`tf.custom_gradient` in graph mode, called by Keras's TensorFlow optimizer through the
default distribution strategy), and that entry's closure holds the whole traced graph. Nothing ever removes
it (tensorflow/tensorflow#97697), so a process keeps every graph it traced and slows as it grows: at the end of
a quick session a 1-epoch trial took 5.4 s, against 2.0 s with this fix (README, "What a trial costs").
Those entries only serve to differentiate through graphs whose models are gone, so they are dropped here.
"""

from __future__ import annotations

import keras
from tensorflow.python.framework import ops

_PREFIX = "CustomGradient-"  # the names tf.custom_gradient registers in graph mode


def clear_session() -> None:
    """keras.backend.clear_session(), then drop the custom gradients earlier traces registered."""
    # Without Keras's forced full collection, which takes about 0.3 s a trial once TensorFlow is loaded: what a
    # cleared session leaves is unreachable (tests/test_tf_session.py), so Python's own collector frees it.
    keras.backend.clear_session(free_memory=False)
    registry = ops._gradient_registry._registry  # no public way to unregister a gradient
    for name in [name for name in registry if name.startswith(_PREFIX)]:
        del registry[name]
