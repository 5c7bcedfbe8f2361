"""The `cnn` search space: keras-tuner's HyperResNet and HyperXception on Fashion-MNIST, and a small CNN baseline.

The images stay 28x28x1 in the data; each model adapts them itself, so every tuner and the baseline see the
same arrays: HyperResNet gets them zero-padded to 32x32 (its smallest input), HyperXception resized to 71x71
(its smallest), the one grey channel repeated to the three both expect. Both applications compile for one-hot
labels; the models are recompiled, same optimizer, for our integer labels.
"""

from __future__ import annotations

import keras
import keras_tuner as kt
from keras_tuner.applications import HyperResNet, HyperXception

from fmbench import space
from fmbench.data import NUM_CLASSES

# The convnet of Keras's "Simple MNIST convnet" example (keras.io/examples/vision/mnist_convnet): two 3x3
# convolutions (32, 64 filters) with max pooling, dropout 0.5, softmax; Adam at Keras's default rate.
BASELINE_HPS = {"architecture": "convnet"}


def _inputs(side: int) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """(the 28x28 input, the same images as side x side x 3)."""
    images = keras.Input(shape=(28, 28))
    x = keras.layers.Reshape((28, 28, 1))(images)
    x = keras.layers.ZeroPadding2D(2)(x) if side == 32 else keras.layers.Resizing(side, side)(x)
    return images, keras.layers.Concatenate()([x, x, x])


def _convnet() -> keras.Model:
    images = keras.Input(shape=(28, 28))
    x = keras.layers.Reshape((28, 28, 1))(images)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
        x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Dropout(0.5)(keras.layers.Flatten()(x))
    model = keras.Model(images, keras.layers.Dense(NUM_CLASSES, activation="softmax")(x))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


# HyperXception declares Float("dropout_rate", 0.0, 0.6, step=0.1): keras-tuner counts its grid as 0.6 // 0.1 + 1
# = 6 values in floating point, so 0.6 is never drawn. Declared first, this knob (a grid of all 7 values, the
# application's default kept) is the one keras-tuner keeps (fmbench.space.declare_knob).
XCEPTION_DROPOUT = space.Knob("dropout_rate", "float", 0.0, 0.6, step=0.1, default=0.5)


def build_model(hp: kt.HyperParameters) -> keras.Model:
    """keras-tuner hypermodel: the architecture, then that application's own knobs (names prefixed by it)."""
    architecture = hp.Choice("architecture", ["resnet", "xception"])
    for name, side, hypermodel in (("resnet", 32, HyperResNet), ("xception", 71, HyperXception)):
        with hp.conditional_scope("architecture", name), hp.name_scope(name):
            if name == "xception":
                space.declare_knob(XCEPTION_DROPOUT, hp)
            if architecture == name:
                _, x = _inputs(side)
                application = hypermodel(input_tensor=x, classes=NUM_CLASSES).build(hp)
    # The applications take a one-element list of inputs; one input lets the model be called on an array.
    model = keras.Model(application.inputs[0], application.outputs[0])
    model.compile(optimizer=application.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def make_model(values: dict) -> keras.Model:
    """A compiled model from plain hyperparameter values, as build_model would make it (or the baseline)."""
    if values["architecture"] == "convnet":
        return _convnet()
    hp = kt.HyperParameters()
    hp.values.update(values)  # build_model's knobs take these values instead of their defaults
    return build_model(hp)


def active_values(values: dict) -> dict:
    """The hyperparameters that shaped the model: drops keras-tuner's bookkeeping ('tuner/...')."""
    return {key: value for key, value in sorted(values.items()) if not key.startswith("tuner/")}
