"""How a trained model is scored on held-out images: accuracy and mean loss from one inference pass.

Keras's validation inside `fit` and its `evaluate` trace a test function for every new model, which on a
small machine costs more than the pass itself (about half a second a trial on 2 cores). Every trial, the
baseline and the final test are scored here instead, the same way: accuracy is the share of images whose
highest output is the label (what Keras's "accuracy" computes for integer labels), the loss is the model's
compiled loss averaged over all images. benchmarks/test_trial_cost.py checks the accuracies equal Keras's.
"""

from __future__ import annotations

import keras
import numpy as np

from fmbench import backend

CHUNK = 1024  # images per forward pass: bounds the activations' memory for the large cnn models


def score(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean loss) of the model on x, y, in inference mode (dropout off, batch norm's moving stats)."""
    loss_fn = keras.losses.get(model.loss)
    correct, loss_sum = 0, 0.0
    for start in range(0, len(y), CHUNK):
        labels = y[start : start + CHUNK]
        outputs = backend.infer(model, x[start : start + CHUNK], CHUNK)
        correct += int(np.sum(np.argmax(outputs, axis=-1) == labels))
        losses = keras.ops.convert_to_numpy(loss_fn(labels, outputs))
        # A loss object averages over the chunk; a loss function returns one value per image.
        loss_sum += float(losses.sum()) if losses.ndim else float(losses) * len(labels)
    return correct / len(y), loss_sum / len(y)
