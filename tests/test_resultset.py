"""The one results model: which rows count, in which order, and what failed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from fmbench import resultset, schema
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


def test_rows_read_in_the_schemas_types_and_order(folder):
    """Integers as nullable integers (a gap stays a gap, '3.0' from an older writer reads as 3), the rest of the
    numbers as floats, text as text; columns a later version added come in at the schema's place."""
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs.loc[0, "seed"] = "1.0"
    runs.to_csv(folder / "runs.csv", index=False)
    rs = resultset.load(folder)
    assert list(rs.runs.columns) == [*schema.RUN_COLUMNS, "failed"]
    assert list(rs.trials.columns) == schema.TRIAL_COLUMNS
    numbers = {c.name: "Int64" if c.integer else "float64" for c in schema.RUN_SCHEMA if not c.text}
    assert {name: str(rs.runs[name].dtype) for name in numbers} == numbers
    assert all(isinstance(value, str) for c in schema.TEXT_COLUMNS & set(rs.runs) for value in rs.runs[c])
    assert rs.runs["seed"].iloc[0] == 1 and rs.runs["max_trials"].isna().any()  # time budgets have no trial budget
    assert str(rs.trials["bracket"].dtype) == "Int64" and rs.trials["bracket"].isna().all()


@pytest.mark.parametrize("value", ["1.5", "inf"])
def test_a_fraction_in_an_integer_column_is_refused_naming_its_line(folder, value):
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs.loc[2, "train_size"] = value
    runs.to_csv(folder / "runs.csv", index=False)
    with pytest.raises(ResultsError) as excinfo:
        resultset.load(folder)
    message = str(excinfo.value)
    assert f"runs.csv: line 4: column train_size is {float(value)!r}, not a whole number" in message
    assert "\n" not in message


def test_groups_pick_their_current_rows_within_themselves(folder):
    """A store of two commits: the later commit's rows do not supersede the earlier one's, as load's rule would."""
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    trials = pd.read_csv(folder / "trials.csv", dtype=str, keep_default_na=False)
    later, later_trials = runs.copy(), trials.copy()
    later["commit"], later["started_at"] = "bbbb222", "2030-01-01T00:00:00+00:00"
    later["run_id"] += "-later"
    later_trials["run_id"] += "-later"
    pd.concat([runs, later]).to_csv(folder / "runs.csv", index=False)
    pd.concat([trials, later_trials]).to_csv(folder / "trials.csv", index=False)
    groups = resultset.load_groups(folder, lambda rows: [rows["commit"]])
    assert [key for key, _ in groups] == [(runs["commit"].iloc[0],), ("bbbb222",)]
    for _, rs in groups:
        assert len(rs.runs) == 14 and rs.superseded.empty and len(rs.trials) == len(trials)
    assert len(resultset.load(folder).superseded) == 14, "one result set: the later rows supersede the earlier"


def test_without_failed_drops_failed_runs_and_their_trials(folder):
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    cell = runs.cell == "random-trials3-seed1"
    runs.loc[cell, ["test_accuracy", "stopped_by", "error"]] = ["", "error", "boom"]
    runs.to_csv(folder / "runs.csv", index=False)
    rs = resultset.load(folder)
    clean = rs.without_failed()
    failed_id = runs.loc[cell, "run_id"].iloc[0]
    assert len(clean.runs) == len(rs.runs) - 1 and failed_id not in set(clean.runs.run_id)
    assert not rs.run_trials(failed_id).empty and clean.run_trials(failed_id).empty


def test_every_reader_of_results_folders_goes_through_the_loaders():
    """One door: outside the storage and model modules, nothing in fmbench reads a table or models raw frames."""
    package = Path(resultset.__file__).parent
    raw = ("read_csv", "read_runs(", "read_trials(", "read_table(", "from_frames")
    offenders = [
        f"{path.relative_to(package)}: {word}"
        for path in package.rglob("*.py")
        if path.name not in ("results.py", "resultset.py")
        for word in raw
        if word in path.read_text()
    ]
    assert not offenders


def test_rows_without_cell_names_are_told_apart_by_tuner_budget_and_seed(folder):
    """Empty cells read as '': taken as one cell, every row but the latest would count as superseded."""
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs["cell"] = ""
    runs.to_csv(folder / "runs.csv", index=False)
    rs = resultset.load(folder)
    assert len(rs.runs) == 14 and rs.superseded.empty


def _on_backend(folder: Path, name: str) -> Path:
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs["keras_backend"] = name
    runs.to_csv(folder / "runs.csv", index=False)
    return folder


def test_rows_of_two_backends_are_never_one_comparison(folder, tmp_path):
    other = _on_backend(shutil.copytree(GOLDEN, tmp_path / "jax-run"), "jax")
    runs = pd.read_csv(other / "runs.csv", dtype=str, keep_default_na=False)
    runs["run_id"] = "jax-" + runs["run_id"]  # another run's rows, not the same rows twice
    runs.to_csv(other / "runs.csv", index=False)
    with pytest.raises(ResultsError, match="rows of Keras on jax and on tensorflow in one comparison"):
        resultset.load([folder, other])
    assert set(resultset.load(other).runs.keras_backend) == {"jax"}


def test_rows_from_before_the_backend_column_read_as_tensorflow(folder):
    _on_backend(folder, "")
    assert set(resultset.load(folder).runs.keras_backend) == {"tensorflow"}
