"""What each cell's accuracy cost: wall time, trials, epochs and hardware use, and the search time and epochs it took
to reach the baseline's validation accuracy."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd

from fmbench import stats
from fmbench.registry import BASELINE
from fmbench.report.records import record_table
from fmbench.report.tables import num
from fmbench.resultset import cell_order, cell_rows


class CostRow(NamedTuple):
    tuner: str
    budget: str
    wall_seconds: str
    trials: str
    search_epochs: str
    stopped_by: str
    gpu_util: str
    gpu_mem: str
    cpu_util: str


COST_HEADER = CostRow(
    tuner="tuner",
    budget="budget",
    wall_seconds="wall s: search / retrain / evaluate",
    trials="trials completed (failed)",
    search_epochs="search epochs",
    stopped_by="stopped by",
    gpu_util="GPU util % mean / max",
    gpu_mem="GPU mem peak MB",
    cpu_util="CPU util % mean",
)


def _mean(values) -> float:
    values = [float(v) for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _cost_row(group: pd.DataFrame, tuner: str, budget: str) -> CostRow:
    ok = group[~group["failed"]]
    stopped = group["stopped_by"].value_counts()
    gpu_mean, gpu_max, gpu_mem = _mean(ok["gpu_util_mean"]), ok["gpu_util_max"].max(), ok["gpu_mem_peak_mb"].max()
    no_gpu = all(math.isnan(v) for v in (gpu_mean, gpu_max, gpu_mem))
    return CostRow(
        tuner=tuner,
        budget=budget,
        wall_seconds=" / ".join(
            num(_mean(ok[c]), 1) for c in ("search_seconds", "retrain_seconds", "evaluate_seconds")
        ),
        trials=f"{num(_mean(ok['trials_completed']), 1)} ({int(group['trials_failed'].fillna(0).sum())})",
        search_epochs=num(_mean(ok["search_epochs"]), 1),
        stopped_by=", ".join(f"{name}×{stopped[name]}" for name in sorted(stopped.index)),
        gpu_util="no GPU" if no_gpu else f"{num(gpu_mean, 0)} / {num(gpu_max, 0)}",
        gpu_mem="no GPU" if no_gpu else num(gpu_mem, 0),
        cpu_util=num(_mean(ok["cpu_util_mean"]), 0),
    )


def cost_section(runs: pd.DataFrame) -> list[str]:
    rows = [
        _cost_row(cell_rows(runs, tuner, budget), tuner, budget)
        for tuner, budget in cell_order(zip(runs["tuner"], runs["budget"]))
    ]
    # A result set holds one trainer (fmbench.resultset refuses a mix): a replay's seconds are its table's.
    replayed = set(runs["trainer"]) == {"replay"}
    header = COST_HEADER._replace(wall_seconds="table s: search / retrain / evaluate") if replayed else COST_HEADER
    return [
        "## Cost",
        "",
        record_table(rows, header),
        "",
        "Means over finished runs; failed trials are summed over all runs; *stopped by* counts every run. "
        "CPU util is this process, in percent of one core.",
        "",
    ]


class ReachRow(NamedTuple):
    tuner: str
    budget: str
    seeds_reached: str
    median_seconds: str
    median_epochs: str


REACH_HEADER = ReachRow("tuner", "budget", "seeds reached", "median search s", "median epochs")


def baseline_target(runs: pd.DataFrame) -> float | None:
    """The mean best validation accuracy of the finished baseline runs; None without one."""
    base = runs[(runs["tuner"] == BASELINE) & ~runs["failed"]]["best_val_accuracy"].dropna()
    return float(base.mean()) if len(base) else None


def _reach_row(group: pd.DataFrame, trials: pd.DataFrame, target: float, tuner: str, budget: str) -> ReachRow:
    reached = []  # (search seconds, epochs) of each seed that reached the target
    for run_id in group["run_id"]:
        t = trials[trials["run_id"] == run_id]
        hit = stats.reach_target(
            list(t["started_seconds"]), list(t["seconds"]), list(t["epochs"]), list(t["val_accuracy"]), target
        )
        if hit is not None:
            reached.append(hit)
    if not reached:
        return ReachRow(tuner, budget, f"0 / {len(group)}", "not reached", "not reached")
    seconds, epochs = zip(*reached)
    return ReachRow(
        tuner,
        budget,
        f"{len(reached)} / {len(group)}",
        num(float(np.median(seconds)), 1),
        num(float(np.median(epochs)), 1),
    )


def time_to_baseline_section(runs: pd.DataFrame, trials: pd.DataFrame, target: float | None) -> list[str]:
    lines = ["## Time and epochs to reach the baseline's validation accuracy", ""]
    if target is None:
        return lines + ["No finished baseline run: there is no target to reach.", ""]
    rows = [
        _reach_row(cell_rows(runs, tuner, budget), trials, target, tuner, budget)
        for tuner, budget in cell_order(zip(runs["tuner"], runs["budget"]))
        if tuner != BASELINE
    ]
    return lines + [
        f"Target: {target:.4f}, the mean best validation accuracy of the finished baseline runs. Per run, the "
        "first trial (in start order) at or above it; time is search seconds to that trial's end, epochs are "
        "summed over all trials up to and including it. Medians are over the seeds that reached it.",
        "",
        record_table(rows, REACH_HEADER),
        "",
    ]
