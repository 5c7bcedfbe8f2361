"""Shared fixtures: the shipped real Fashion-MNIST subset, as a path and as a small loaded split; and the guard that
keeps every test not marked e2e from training a model.

The guard: while a test without the e2e marker runs (its setup, the test itself and its teardown), the training
entry points (keras.Model's fit and train_on_batch, and the fit of each scikit-learn classifier fmbench.search.sklearn
makes) are replaced by a function that raises. So `pytest -m "not e2e"` trains nothing in this process, and a test
that trains and lacks the marker fails with a message naming the fix. A refusal that the code under test catches
(keras-tuner turns a trial's error into a FAILED trial, the protocol turns its own into an error row) still fails
the test. Entry points are patched only in libraries already imported: a test run that never loads Keras does not
pay seconds to load it here, and a test run of several modules has loaded Keras at collection (tests import fmbench's
Keras modules at their top). Training in a child process (a subprocess running pytest or fmbench) is beyond it: such
tests are marked e2e by hand.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)  # tests/test_training_guard.py runs the guard on a test file of its own

# Before any test imports TensorFlow: keep its C++ start-up chatter out of the test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `make test` runs two test processes: on a GPU machine each must take GPU memory as it needs it, not all of it.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

SUBSET_DIR = Path(__file__).parent / "data" / "fashion-mnist-subset"

# Tiny training sizes for tests that must train (never a full model): 300 train / 100 val / 100 test images.
TINY_TRAIN, TINY_VAL, TINY_TEST = 300, 100, 100

TRAINS = "this test trains a model: mark it @pytest.mark.e2e (tests/conftest.py)"

_refused: list[str] = []  # the training calls refused in the running test, as "Class.method"


def refusal(name: str):
    """What the training method `name` is in a test not marked e2e: it notes the call and raises."""

    def refuse(*args, **kwargs):
        _refused.append(f"{type(args[0]).__name__}.{name}" if args else name)
        raise AssertionError(TRAINS)

    refuse.refuses_training = True
    return refuse


def training_entry_points() -> list[tuple[type, str]]:
    """(class, method name) of each way to train a model, in the libraries this process has already imported."""
    points: list[tuple[type, str]] = []
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "Model"):  # Sequential and functional models inherit Model's methods
        points += [(keras.Model, "fit"), (keras.Model, "train_on_batch")]
    sklearn_search = sys.modules.get("fmbench.search.sklearn")
    if sklearn_search is not None:  # each classifier its space or its baseline makes
        knobs = {"alpha": 1e-4, "n_estimators": 10, "max_depth": 4}
        models = (sklearn_search.BASELINE_VALUES["model"], *sklearn_search.SPACE["model"].choices)
        classes = {type(sklearn_search.make_model({**knobs, "model": model}, seed=1)) for model in models}
        points += [(cls, "fit") for cls in sorted(classes, key=lambda cls: cls.__name__)]
    return points


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[bool]:
    """A test not marked e2e runs its setup, call and teardown with every training entry point refusing (so a
    module-scoped fixture that trains, set up by the first test that asks for it, is refused too)."""
    if item.get_closest_marker("e2e") is not None:
        return (yield)
    with pytest.MonkeyPatch.context() as patch:
        for owner, name in training_entry_points():
            patch.setattr(owner, name, refusal(name))
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A refusal that the code under test caught (a FAILED trial, an error row) still fails the test, by name."""
    _refused.clear()
    try:
        result = yield
    except Exception as error:
        if _refused and TRAINS not in str(error):
            raise AssertionError(f"{TRAINS}: it called {', '.join(_refused)}") from error
        raise
    if _refused:
        raise AssertionError(f"{TRAINS}: it called {', '.join(_refused)}, and the code under test caught the refusal")
    return result


@pytest.fixture(scope="session")
def visible_gpus() -> list[str]:
    """Names of the GPUs this process can see, read from NVML here rather than through fmbench.telemetry.

    What tests of GPU-dependent output expect: [] on a machine without NVML or a visible GPU.
    """
    from fmbench.telemetry import visible_gpu_indices

    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no package, no driver library, no device
        return []
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
        return [
            _text(pynvml.nvmlDeviceGetName(handles[i]))
            for i in visible_gpu_indices(os.environ.get("CUDA_VISIBLE_DEVICES"), uuids)
        ]
    finally:
        pynvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


@pytest.fixture(scope="session")
def subset_dir() -> Path:
    """The shipped subset (1500 train + 300 validation + 400 test images, real Fashion-MNIST)."""
    assert SUBSET_DIR.is_dir(), f"{SUBSET_DIR} is missing: the shipped test subset is part of the repository"
    return SUBSET_DIR


@pytest.fixture(scope="session")
def subset_split(subset_dir: Path):
    """The subset loaded through fmbench.data.load with tiny sizes (300/100/100): for tests that train."""
    from fmbench import data
    from fmbench.spec import DataSizes

    return data.load(subset_dir, DataSizes(train=TINY_TRAIN, val=TINY_VAL, test=TINY_TEST))
