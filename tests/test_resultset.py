"""The one results model: which rows count, in which order, and what failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from fmbench import resultset
from fmbench.results import ResultsError

GOLDEN = Path(__file__).parent / "golden_regress" / "smoke"


@pytest.fixture
def folder(tmp_path) -> Path:
    shutil.copytree(GOLDEN, tmp_path / "run")
    return tmp_path / "run"


def test_latest_row_by_started_at_is_current_whatever_the_file_order(folder):
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    late = runs[runs.cell == "bayesian-trials3-seed1"].copy()
    late[["run_id", "started_at", "test_accuracy", "stopped_by", "error"]] = [
        "early-fail",
        "2000-01-01T00:00:00+00:00",
        "",
        "error",
        "OOM",
    ]
    pd.concat([runs, late]).to_csv(folder / "runs.csv", index=False)  # the older row written last
    rs = resultset.load(folder)
    assert list(rs.superseded.run_id) == ["early-fail"]
    assert len(rs.runs) == 14 and not rs.runs.failed.any() and rs.failed.empty


def test_failed_current_row_is_marked_and_cells_are_in_report_order(folder):
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs.loc[runs.cell == "random-time5s-seed2", ["test_accuracy", "stopped_by", "error"]] = ["", "error", "boom"]
    runs.iloc[::-1].to_csv(folder / "runs.csv", index=False)
    rs = resultset.load(folder)
    assert list(rs.failed.cell) == ["random-time5s-seed2"]
    assert rs.cells()[0] == ("baseline", "none")
    assert [t for t, b in rs.cells() if b == "time5s"] == ["random", "hyperband", "bayesian"]
    assert list(rs.cell_runs("random", "time5s").seed) == [1.0, 2.0]


def test_trials_of_superseded_runs_are_left_out_and_counted(folder):
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    rerun = runs[runs.cell == "random-trials3-seed1"].copy()
    rerun[["run_id", "started_at"]] = ["rerun", "2030-01-01T00:00:00+00:00"]
    pd.concat([runs, rerun]).to_csv(folder / "runs.csv", index=False)
    rs = resultset.load(folder)
    assert "rerun" in set(rs.runs.run_id) and rs.run_trials("rerun").empty
    assert rs.orphan_trials == 3  # the superseded run's three trials


def test_no_folder_is_an_error():
    with pytest.raises(ResultsError, match="no results folder given"):
        resultset.load([])
