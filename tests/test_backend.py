"""fmbench.backend: the backend switch, versions read without importing a backend, and a cleared session."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import keras
import pytest

from fmbench import backend
from fmbench.models import mlp
from fmbench.spec import SpecError


def test_an_unknown_backend_is_refused_with_the_choices() -> None:
    with pytest.raises(SpecError, match="unknown Keras backend 'torch': choose one of tensorflow, jax"):
        backend.select("torch")


def test_keras_cannot_switch_backend_once_imported() -> None:
    other = "jax" if keras.backend.backend() == "tensorflow" else "tensorflow"
    with pytest.raises(SpecError, match=f"Keras already runs on {keras.backend.backend()} in this process"):
        backend.select(other)
    assert backend.select(keras.backend.backend()) == keras.backend.backend()


def test_versions_are_read_without_importing_the_library() -> None:
    code = (
        "import sys; from fmbench import backend; "
        "print(backend.version('tensorflow'), backend.version('jax'), "
        "'tensorflow' in sys.modules, 'jax' in sys.modules, sep='|')"
    )
    # '|' between fields: a version may read 'not installed', two words.
    out = (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        .stdout.strip()
        .split("|")
    )
    assert out[2:] == ["False", "False"], "reading a version must not import the library"
    assert out[0] != "" and out[1] != ""
    assert backend.installed_version("no-such-distribution-fmbench") == "not installed"


def test_select_turns_jax_preallocation_off_before_jax_starts() -> None:
    code = (
        "import os; from fmbench import backend; backend.select('jax'); "
        "print(os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "XLA_PYTHON_CLIENT_PREALLOCATE")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "false"


@pytest.mark.e2e
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's gradient registry")
def test_clear_session_frees_the_graphs_a_tensorflow_fit_traced(subset_split) -> None:
    from tensorflow.python.framework import func_graph, ops

    def graphs_alive() -> int:
        gc.collect()
        return sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())

    def custom_gradients() -> int:
        return sum(name.startswith("CustomGradient-") for name in ops._gradient_registry._registry)

    backend.clear_session()
    before = graphs_alive()
    model = mlp.make_model(mlp.BASELINE_HPS)
    model.fit(subset_split.x_train, subset_split.y_train, epochs=1, batch_size=64, verbose=0)
    del model
    assert custom_gradients() > 0, "TensorFlow registers the optimizer's all-reduce gradient when it traces a step"
    assert graphs_alive() > before, "and that registration keeps the traced graphs alive after the model is gone"
    backend.clear_session()
    assert custom_gradients() == 0
    assert graphs_alive() == before
