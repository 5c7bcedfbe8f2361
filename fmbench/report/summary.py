"""One-screen terminal summaries of finished runs."""

from __future__ import annotations

import json

from tabulate import tabulate

from fmbench.registry import BASELINE
from fmbench.resultset import ResultSet
from fmbench.run_rows import run_row
from fmbench.schema import TELEMETRY_COLUMNS
from fmbench.spec import RunResult
from fmbench.stats import mean_interval, paired_difference


def run_summary(result: RunResult) -> str:
    """What a person wants to see when `fmbench run` ends: quality next to cost, and why it stopped."""
    spec, t = result.spec, result.telemetry
    gpu = (
        "no GPU"
        if t.gpu_util_mean is None
        else f"{t.gpu_util_mean:.0f}% mean, {t.gpu_util_max:.0f}% max, {t.gpu_mem_peak_mb:.0f} MB peak"
    )
    cpu = "n/a" if t.cpu_util_mean is None else f"{t.cpu_util_mean:.0f}% of one core"
    replayed = f", replayed from {spec.replay_table}" if spec.replay_table else ""
    rows = [
        ("run", f"{spec.cell} (profile {spec.profile}, {spec.epochs} epochs, batch {spec.batch_size}{replayed})"),
        ("test accuracy", _fmt(result.test_accuracy)),
        ("test loss", _fmt(result.test_loss)),
        ("best validation accuracy", _fmt(result.best_val_accuracy)),
        (
            "trials",
            f"{result.trials_completed} completed, {result.trials_failed} failed"
            + (f", {result.trials_cut} cut by the budget" if result.trials_cut else ""),
        ),
        ("epochs", f"{result.search_epochs} in search + {result.retrain_epochs} retrain"),
        (
            "stopped by",
            result.stopped_by
            + (
                ""
                if result.time_overrun_seconds is None
                else f" (time budget overrun {result.time_overrun_seconds:.1f}s)"
            ),
        ),
        (
            "table seconds" if spec.replay_table else "wall seconds",  # a replay's clock runs in its table's seconds
            f"{result.wall_seconds:.1f} = search {result.search_seconds:.1f} + retrain "
            f"{result.retrain_seconds:.1f} + evaluate {result.evaluate_seconds:.1f}",
        ),
        ("GPU", gpu),
        ("CPU", cpu),
        ("best hyperparameters", json.dumps(result.best_hyperparameters, sort_keys=True)),
    ]
    if result.error:
        rows.append(("ERROR", result.error))
    return tabulate(rows, tablefmt="simple")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


EXTRA_INFO_COLUMNS = [
    "cell",
    "test_accuracy",
    "best_val_accuracy",
    "trials_completed",
    "trials_failed",
    "search_epochs",
    "retrain_epochs",
    "stopped_by",
    "time_overrun_seconds",
    "search_seconds",
    "retrain_seconds",
    "evaluate_seconds",
    "error",
    "trainer",  # a replayed cell's seconds are its table's
    *TELEMETRY_COLUMNS,
]


def extra_info(result: RunResult) -> dict:
    """The figures a pytest-benchmark JSON should carry beside the time (it compares only the time)."""
    row = run_row(result, machine={})
    info = {column: row[column] for column in EXTRA_INFO_COLUMNS if row[column] is not None}
    info["best_hyperparameters"] = result.best_hyperparameters
    if result.telemetry.gpu_util_mean is None:
        info["gpu"] = "no GPU"
    return info


def comparison_table(rs: ResultSet) -> str:
    """Per tuner and budget: test accuracy over seeds, paired difference to the baseline, and cost (current rows
    only). Takes the model fmbench.resultset.load built, so the terminal reads rows through the same validating
    door as the report and the gate: `comparison_table(resultset.load(out))`."""
    baseline = rs.ok[rs.ok.tuner == BASELINE].set_index("seed")["test_accuracy"].to_dict()
    rows = []
    for tuner, budget in rs.cells():
        group = rs.cell_runs(tuner, budget)
        ok = group[~group.failed]
        accuracy = "all failed"
        diff = ""
        if len(ok):
            interval = mean_interval(ok.test_accuracy)
            accuracy = f"{interval.mean:.4f} ± {interval.std:.4f}"
            if tuner != BASELINE and baseline and set(ok.seed) & set(baseline):
                paired = paired_difference(ok.set_index("seed").test_accuracy.to_dict(), baseline)
                diff = f"{paired.mean:+.4f}"
        rows.append(
            {
                "tuner": tuner,
                "budget": budget,
                "seeds": f"{len(ok)}/{len(group)}",
                "test acc (mean ± std)": accuracy,
                "vs baseline": diff,
                "wall s": f"{group.wall_seconds.mean():.1f}",
                "trials": f"{group.trials_completed.mean():.1f}",
                "epochs": f"{(group.search_epochs + group.retrain_epochs).mean():.1f}",
                "stopped by": ", ".join(f"{k}×{v}" for k, v in group.stopped_by.value_counts().items()),
            }
        )
    superseded = (
        f"\n{len(rs.superseded)} superseded row(s) left out (a later run of the same cell)"
        if len(rs.superseded)
        else ""
    )
    return tabulate(rows, headers="keys", tablefmt="simple", disable_numparse=True) + superseded  # keep the sign of Δ
