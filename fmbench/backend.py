"""The one module that knows which Keras backend runs and what differs between them (TensorFlow or JAX).

Keras reads `KERAS_BACKEND` once, when it is first imported, so `select` must run before anything imports Keras;
every number a run makes depends on the backend, so rows record it and its version (read from the installed
package's metadata: importing TensorFlow to read its version would load it on a JAX run). Nothing else in
fmbench imports TensorFlow: on JAX the library may be absent (the GPU machines at hand have none).
"""

from __future__ import annotations

import importlib.metadata
import os
import sys

from fmbench.spec import SpecError

# Backend name -> the distribution whose version rows record.
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax"}
# Where nothing chooses (a profile names its faster backend: fmbench.profiles); Keras's own default too.
DEFAULT = "tensorflow"


def select(name: str | None = None, default: str = DEFAULT) -> str:
    """Make `name` (else $KERAS_BACKEND, else `default`) this process's Keras backend; returns it.

    Where Keras already runs (a caller imported it first) and no backend was asked for, that one stays; one asked
    for that differs is refused: Keras cannot switch.
    """
    asked = name or os.environ.get("KERAS_BACKEND")
    running = sys.modules["keras"].backend.backend() if "keras" in sys.modules else None
    chosen = asked or running or default
    if chosen not in BACKENDS:
        raise SpecError(f"unknown Keras backend {chosen!r}: choose one of {', '.join(BACKENDS)}")
    if running is not None:
        if running != chosen:
            raise SpecError(
                f"Keras already runs on {running} in this process, not {chosen}: set KERAS_BACKEND={chosen} (or "
                "--backend) before anything imports Keras"
            )
    os.environ["KERAS_BACKEND"] = chosen
    if chosen == "jax":
        # JAX takes 75% of a GPU's memory at start by default; runs that share a GPU (workers, pytest-xdist) would
        # starve each other, and the memory figure would mean nothing. Read by JAX when it starts, so set here.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        if "tensorflow" not in sys.modules:
            # Keras seeds TensorFlow's generator wherever TensorFlow is installed (keras.utils.set_random_seed), and
            # tensorboard, which keras-tuner imports, loads it too: seconds of start-up and memory a JAX run never
            # uses. Marked absent, every such import takes its no-TensorFlow path.
            sys.modules["tensorflow"] = None
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    return chosen


def name() -> str:
    """The backend Keras runs on in this process (imports Keras)."""
    import keras

    return keras.backend.backend()


def version(backend: str | None = None) -> str:
    """The installed version of a backend's library (default: the running one's); 'not installed' if absent."""
    return installed_version(BACKENDS[backend or name()])


def installed_version(distribution: str) -> str:
    """A distribution's version from its metadata, without importing it; 'not installed' if absent."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def clear_session() -> None:
    """A fresh Keras session between models, without the state the backend would otherwise keep."""
    import keras

    # Without Keras's forced full collection, which takes about 0.3 s a trial once TensorFlow is loaded: what a
    # cleared session leaves is unreachable (tests/test_backend.py), so Python's own collector frees it.
    keras.backend.clear_session(free_memory=False)
    if keras.backend.backend() == "tensorflow":
        _drop_tensorflow_custom_gradients()


def _drop_tensorflow_custom_gradients() -> None:
    """Drop the gradients TensorFlow registered for earlier traced graphs, which it never frees.

    Every traced training step registers a gradient for the optimizer's all-reduce in TensorFlow's global gradient
    registry (`tf.custom_gradient` in graph mode, called by Keras's TensorFlow optimizer through the default
    distribution strategy), and that entry's closure holds the whole traced graph. Nothing ever removes it
    (tensorflow/tensorflow#97697), so a process keeps every graph it traced and slows as it grows: at the end of a
    quick session a 1-epoch trial took 5.4 s, against 2.0 s with this fix (docs/performance.md). Those entries
    only serve to differentiate through graphs whose models are gone.
    """
    from tensorflow.python.framework import ops

    registry = ops._gradient_registry._registry  # no public way to unregister a gradient
    for key in [key for key in registry if key.startswith("CustomGradient-")]:
        del registry[key]


def limit_gpu_memory() -> None:
    """Let the backend take GPU memory as needed, so one search does not hold it all and the memory figure means
    something: TensorFlow's memory growth; on JAX, `select` turned preallocation off before JAX started."""
    if name() != "tensorflow":
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):  # none on CPU: a no-op
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            # TF already initialised its GPUs (a tensor or model exists): growth can only be set before that, and
            # the run works with TF's default allocator, so carry on.
            pass


def infer(model, images, rows: int):
    """The model's outputs on at most `rows` images, in inference mode (dropout off), as a NumPy array.

    TensorFlow runs it eagerly: tracing a predict function costs more than the pass for a new model (about half a
    second on 2 cores). JAX runs it through Keras's jitted predict step, on images padded to `rows` so that a model
    compiles its pass once: eager JAX compiles every op anew for every new layer shape, which is costlier still.
    A row's outputs do not depend on the other rows in inference mode, so the padding changes nothing.
    """
    import keras
    import numpy as np

    if keras.backend.backend() != "jax":
        return keras.ops.convert_to_numpy(model(images, training=False))
    padding = np.zeros((rows - len(images), *images.shape[1:]), images.dtype)
    return keras.ops.convert_to_numpy(model.predict_on_batch(np.concatenate([images, padding])))[: len(images)]
