"""Shared fixtures: the shipped real Fashion-MNIST subset, as a path and as a small loaded split."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Before any test imports TensorFlow: keep its C++ start-up chatter out of the test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# `make test` runs two test processes: on a GPU machine each must take GPU memory as it needs it, not all of it.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")

SUBSET_DIR = Path(__file__).parent / "data" / "fashion-mnist-subset"

# Tiny training sizes for tests that must train (never a full model): 300 train / 100 val / 100 test images.
TINY_TRAIN, TINY_VAL, TINY_TEST = 300, 100, 100


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
