"""What one trial costs on each Keras backend: keras-tuner's stock trial path against fmbench's, on the same
configurations, at quick and standard sizes, beside the machine's own matrix-product rate.

Stock keras-tuner (`kt.Tuner.run_trial`) runs one step per call, traces accuracy into the step, validates and
checkpoints after every improving epoch; fmbench's path (`keras_tuner._KerasTrials.run_trial`) runs 16 steps per
call, traces the training step once (`fmbench.models.training`), with no metric in it, scores the model once after
the last epoch (`fmbench.models.scoring`), checkpoints only for Hyperband and forces no garbage collection. The
weight updates are the same, so on each backend the validation accuracies after the last epoch must match.

Each backend runs in a process of its own (benchmarks/trial_cost_worker.py: Keras cannot switch backends), one
after the other, never together. The 1-epoch trial is the floor every trial pays (building, tracing or compiling,
one epoch, scoring); (10-epoch - 1-epoch) / 9 is a later epoch, whose arithmetic (the dense layers' products,
forward and backward) over its seconds is the throughput set beside a large fp32 `a @ b` measured in this run.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trial_cost_worker as worker

BACKENDS = ("tensorflow", "jax")
# Every configuration at quick sizes; at the whole training set, the one-layer baseline and the three 512-unit layers
# (the two the throughput goal names), which bound the space's cost per epoch.
SIZES = {"quick": tuple(range(worker.CONFIG_COUNT)), "standard": (worker.ONE_LAYER, worker.THREE_LAYERS)}
MATMUL_SIZE = 2048  # a product of 17 GFLOP, large enough to run at the machine's rate
# fmbench's median 10-epoch trial as a share of the stock path's on TensorFlow at quick size: the committed run is
# below 0.5; the bound is looser so that a noisy hour does not fail, and catches the savings lost (ratio 1).
TARGET_RATIO = 0.65
# JAX's full-size 10-epoch trial as a share of TensorFlow's, both on fmbench's path: the reason the standard, full
# and cnn profiles run on JAX (docs/backends.md). The committed run is 0.44; above 0.6 the choice needs another look.
JAX_OVER_TF_FULL_SIZE = 0.6


def matmul_gflops(repeats: int = 10) -> float:
    """The machine's fp32 matrix-product rate (numpy's BLAS, every core), best of `repeats`."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32) for _ in range(2))
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * MATMUL_SIZE**3 / best / 1e9


def _measure_backend(name: str, profile: str, data_dir: str, out: Path) -> list[dict]:
    command = [sys.executable, str(Path(worker.__file__)), name, profile, data_dir, str(out), *map(str, SIZES[profile])]
    proc = subprocess.run(command, stdout=subprocess.DEVNULL, timeout=1800)  # stderr: its progress, as it goes
    assert proc.returncode == 0, f"{name} {profile}: the trial-cost worker exited {proc.returncode}"
    return json.loads(out.read_text())


def summarise(rows: list[dict], gflops: float) -> dict:
    """Per backend, size and path: median seconds of 1- and 10-epoch trials, of a later epoch, and each
    configuration's later-epoch GFLOP/s (median over rounds) with its share of the matrix-product rate."""
    summary = {}
    keys = sorted({(r["backend"], r["profile"], r["path"]) for r in rows})
    for backend, profile, path in keys:
        mine = [r for r in rows if (r["backend"], r["profile"], r["path"]) == (backend, profile, path)]
        seconds = {(r["config"], r["round"], r["epochs"]): r["seconds"] for r in mine}
        pairs = [(c, rd) for c, rd, e in seconds if e == worker.EPOCHS]
        later = {pair: (seconds[(*pair, worker.EPOCHS)] - seconds[(*pair, 1)]) / (worker.EPOCHS - 1) for pair in pairs}
        flops = {r["config"]: r["flops_per_epoch"] for r in mine}
        per_config = {}
        for config in sorted(flops):
            epoch = statistics.median(s for (c, _), s in later.items() if c == config)
            rate = flops[config] / epoch / 1e9 if epoch > 0 else float("nan")
            per_config[config] = {"later_epoch_seconds": round(epoch, 4), "gflops": round(rate, 1)}
            per_config[config]["share_of_matmul"] = round(rate / gflops, 3)
        summary[f"{backend}/{profile}/{path}"] = {
            "median_first_epoch_trial_seconds": statistics.median(s for (_, _, e), s in seconds.items() if e == 1),
            "median_trial_seconds": statistics.median(s for (_, _, e), s in seconds.items() if e == worker.EPOCHS),
            "median_later_epoch_seconds": round(statistics.median(later.values()), 4),
            "configs": per_config,
        }
    return summary


def _trial_seconds(rows: list[dict], backend: str, profile: str, path: str) -> dict[tuple[int, int], float]:
    """(configuration, round) -> seconds of its 10-epoch trial."""
    return {
        (r["config"], r["round"]): r["seconds"]
        for r in rows
        if (r["backend"], r["profile"], r["path"], r["epochs"]) == (backend, profile, path, worker.EPOCHS)
    }


def _median_ratio(top: dict, bottom: dict) -> float:
    """Median over configurations and rounds of one trial's seconds over its counterpart's."""
    return round(statistics.median(top[key] / bottom[key] for key in top), 3)


def test_trial_cost(benchmark, pytestconfig, fmbench_progress, tmp_path):
    data_dir = pytestconfig.getoption("fmbench_data_dir") or ""
    rows: list[dict] = []
    measured = {}

    def measure():
        measured["gflops_before"] = matmul_gflops()
        for name in BACKENDS:
            for profile in SIZES:
                fmbench_progress(f"[trial cost] {name} at {profile} sizes: configurations {SIZES[profile]}")
                rows.extend(_measure_backend(name, profile, data_dir, tmp_path / f"{name}-{profile}.json"))
        measured["gflops_after"] = matmul_gflops()

    benchmark.pedantic(measure, rounds=1, iterations=1)
    gflops = max(measured["gflops_before"], measured["gflops_after"])
    summary = summarise(rows, gflops)
    ratios = {
        f"{b}/{p}: fmbench over stock": _median_ratio(
            _trial_seconds(rows, b, p, "fmbench"), _trial_seconds(rows, b, p, "stock")
        )
        for b in BACKENDS
        for p in SIZES
    }
    for p in SIZES:
        ratios[f"{p}: fmbench jax over fmbench tensorflow"] = _median_ratio(
            _trial_seconds(rows, "jax", p, "fmbench"), _trial_seconds(rows, "tensorflow", p, "fmbench")
        )
    benchmark.extra_info.update(
        matmul_gflops=round(gflops, 1),
        matmul_gflops_before_after=[round(measured["gflops_before"], 1), round(measured["gflops_after"], 1)],
        epochs=worker.EPOCHS,
        rounds=worker.ROUNDS,
        ratios=ratios,
        summary=summary,
        trials=rows,
    )
    fmbench_progress(f"[trial cost] matmul {gflops:.0f} GFLOP/s; ratios {ratios}")

    # Same math on each backend: every configuration ends at the same validation accuracy on both paths.
    val = {(r["backend"], r["profile"], r["config"], r["round"], r["epochs"], r["path"]): r for r in rows}
    for (b, p, c, rd, e, path), row in val.items():
        if path == "fmbench":
            stock = val[(b, p, c, rd, e, "stock")]
            assert row["val_accuracy"] == pytest.approx(stock["val_accuracy"], abs=1.0 / row["val_size"]), (row, stock)
    assert ratios["tensorflow/quick: fmbench over stock"] <= TARGET_RATIO, ratios
    assert ratios["standard: fmbench jax over fmbench tensorflow"] <= JAX_OVER_TF_FULL_SIZE, ratios
