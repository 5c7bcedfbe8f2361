"""Terminal summaries: the figures pytest-benchmark carries, and the end-of-session comparison table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fmbench import results, resultset
from fmbench.report import summary
from fmbench.run_rows import run_row
from fmbench.schema import RUN_COLUMNS, TRIAL_COLUMNS
from fmbench.spec import Budget, RunResult, RunSpec, TelemetrySummary


def _result(tuner: str, seed: int, accuracy: float | None, error: str = "") -> RunResult:
    budget = Budget() if tuner == "baseline" else Budget(max_trials=3)
    return RunResult(
        spec=RunSpec(tuner=tuner, seed=seed, budget=budget, profile="smoke"),
        run_id=f"{tuner}{seed}",
        started_at="2026-01-01T00:00:00+00:00",
        best_hyperparameters={"num_layers": 1},
        best_val_accuracy=accuracy,
        test_accuracy=accuracy,
        test_loss=0.5,
        search_seconds=10.0,
        retrain_seconds=2.0,
        evaluate_seconds=0.5,
        trials_completed=3,
        trials_failed=0,
        search_epochs=6,
        retrain_epochs=2,
        stopped_by="error" if error else "trials",
        time_overrun_seconds=None,
        error=error,
        telemetry=TelemetrySummary(samples=4, cpu_util_mean=97.0),
    )


def test_extra_info_carries_accuracy_cost_and_no_gpu() -> None:
    info = summary.extra_info(_result("random", 1, 0.81))
    assert info["test_accuracy"] == 0.81 and info["trials_completed"] == 3 and info["stopped_by"] == "trials"
    assert info["cpu_util_mean"] == 97.0 and info["gpu"] == "no GPU"
    assert "gpu_util_mean" not in info  # absent, never a fake 0
    assert info["best_hyperparameters"] == {"num_layers": 1}


def _loaded(tmp_path: Path, rows: list[dict]) -> resultset.ResultSet:
    """Rows written as a results folder and read back through the validating loader, as the suite does."""
    results.append_rows(tmp_path / results.RUNS_FILE, rows, RUN_COLUMNS)
    pd.DataFrame(columns=TRIAL_COLUMNS).to_csv(tmp_path / results.TRIALS_FILE, index=False)
    return resultset.load(tmp_path)


def test_comparison_table_pairs_by_seed_and_counts_failures(tmp_path: Path) -> None:
    rows = [
        run_row(r, machine={})
        for r in (
            _result("baseline", 1, 0.80),
            _result("baseline", 2, 0.70),
            _result("random", 1, 0.83),
            _result("random", 2, 0.74),
            _result("random", 3, None, error="boom"),
        )
    ]
    table = summary.comparison_table(_loaded(tmp_path, rows))
    random_line = next(line for line in table.splitlines() if line.startswith("random"))
    # paired by seed: ((0.83-0.80) + (0.74-0.70)) / 2 = +0.035; seed 3 failed and has no baseline pair
    assert "+0.035" in random_line
    assert "2/3" in random_line and "error×1" in random_line and "trials×2" in random_line


def test_comparison_table_counts_only_the_latest_row_of_a_rerun_cell(tmp_path: Path) -> None:
    failed = run_row(_result("random", 1, None, error="boom"), machine={})
    rerun = run_row(_result("random", 1, 0.83), machine={})
    rerun["run_id"], rerun["started_at"] = "random1-rerun", "2026-01-02T00:00:00+00:00"
    baseline = run_row(_result("baseline", 1, 0.80), machine={})
    table = summary.comparison_table(_loaded(tmp_path, [baseline, rerun, failed]))  # file order is not time order
    random_line = next(line for line in table.splitlines() if line.startswith("random"))
    assert "1/1" in random_line and "+0.030" in random_line and "error" not in random_line
    assert "1 superseded row(s) left out" in table


def test_run_summary_names_trials_cut_by_the_budget() -> None:
    import dataclasses

    plain = summary.run_summary(_result("random", 1, 0.81))
    cut = summary.run_summary(dataclasses.replace(_result("random", 1, 0.81), trials_cut=1))
    assert "3 completed, 0 failed" in plain and "cut" not in plain
    assert "3 completed, 0 failed, 1 cut by the budget" in cut
