"""One-screen terminal summaries of finished runs."""
from __future__ import annotations

import json

from tabulate import tabulate

from fmbench.spec import RunResult


def run_summary(result: RunResult) -> str:
    """What a person wants to see when `fmbench run` ends: quality next to cost, and why it stopped."""
    spec, t = result.spec, result.telemetry
    gpu = "no GPU" if t.gpu_util_mean is None else f"{t.gpu_util_mean:.0f}% mean, {t.gpu_util_max:.0f}% max, {t.gpu_mem_peak_mb:.0f} MB peak"
    cpu = "n/a" if t.cpu_util_mean is None else f"{t.cpu_util_mean:.0f}% of one core"
    rows = [
        ("run", f"{spec.cell} (profile {spec.profile}, {spec.epochs} epochs, batch {spec.batch_size})"),
        ("test accuracy", _fmt(result.test_accuracy)),
        ("test loss", _fmt(result.test_loss)),
        ("best validation accuracy", _fmt(result.best_val_accuracy)),
        ("trials", f"{result.trials_completed} completed, {result.trials_failed} failed"),
        ("epochs", f"{result.search_epochs} in search + {result.retrain_epochs} retrain"),
        ("stopped by", result.stopped_by + ("" if result.time_overrun_seconds is None else f" (time budget overrun {result.time_overrun_seconds:.1f}s)")),
        ("wall seconds", f"{result.wall_seconds:.1f} = search {result.search_seconds:.1f} + retrain {result.retrain_seconds:.1f} + evaluate {result.evaluate_seconds:.1f}"),
        ("GPU", gpu),
        ("CPU", cpu),
        ("best hyperparameters", json.dumps(result.best_hyperparameters, sort_keys=True)),
    ]
    if result.error:
        rows.append(("ERROR", result.error))
    return tabulate(rows, tablefmt="simple")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
