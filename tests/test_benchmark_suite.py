"""The pytest-benchmark suite in benchmarks/, driven as a user drives it: `pytest benchmarks ...` in a subprocess."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fmbench import results

REPO = Path(__file__).resolve().parents[1]
SUBSET = REPO / "tests" / "data" / "fashion-mnist-subset"


def _pytest_benchmarks(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "benchmarks/test_matrix.py", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--fmbench-profile", "nope", "unknown profile 'nope'"),
        ("--fmbench-tuners", "random,sobol", "unknown tuner 'sobol'"),
        ("--fmbench-seeds", "1,x", "comma list of integers"),
        ("--fmbench-seeds", "0", "seed must be an integer >= 1"),
    ],
)
def test_bad_options_are_a_usage_error(option: str, value: str, message: str) -> None:
    proc = _pytest_benchmarks("--benchmark-only", option, value)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert message in proc.stderr


def _smoke_args(out: Path, *extra: str) -> list[str]:
    return ["--fmbench-profile", "smoke", "--fmbench-tuners", "random", "--fmbench-seeds", "1",
            "--fmbench-data-dir", str(SUBSET), "--fmbench-out", str(out), *extra]


def test_the_other_libraries_tuners_and_the_sklearn_baseline_are_cells(tmp_path: Path) -> None:
    proc = _pytest_benchmarks("--co", "-q", "--fmbench-profile", "smoke", "--fmbench-seeds", "1",
                              "--fmbench-tuners", "tpe,tpe-hyperband,grid,sklearn,sklearn-baseline")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for cell in ("test_baseline[seed1]", "test_baseline[sklearn-baseline-seed1]", "test_tuner[tpe-trials4-seed1]",
                 "test_tuner[tpe-hyperband-epochs12-seed1]", "test_tuner[grid-time12s-seed1]", "test_tuner[sklearn-trials4-seed1]"):
        assert cell in proc.stdout, cell
    assert "sklearn-baseline-trials4" not in proc.stdout, "a fixed model runs once per seed, without a budget"
    assert "sklearn-epochs12" not in proc.stdout, "scikit-learn trains no epochs"


def test_resume_skips_the_cells_already_in_the_table(tmp_path: Path) -> None:
    cells = ["baseline-seed1", "random-trials4-seed1", "random-time12s-seed1"]
    pd.DataFrame([{column: None for column in results.RUN_COLUMNS} | {"cell": cell} for cell in cells[:2]],
                 columns=results.RUN_COLUMNS).to_csv(tmp_path / results.RUNS_FILE, index=False)
    proc = _pytest_benchmarks(*_smoke_args(tmp_path, "--fmbench-resume", "-rs", "--benchmark-disable",
                                           "-k", "baseline or trials4"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 skipped" in proc.stdout and "already in" in proc.stdout
    assert len(pd.read_csv(tmp_path / results.RUNS_FILE)) == 2  # nothing ran, nothing appended


def test_a_fresh_session_moves_earlier_tables_aside(tmp_path: Path) -> None:
    (tmp_path / results.RUNS_FILE).write_text("old table\n")
    proc = _pytest_benchmarks(*_smoke_args(tmp_path, "--co", "-q"))
    assert (tmp_path / results.RUNS_FILE).read_text() == "old table\n"  # collecting touches nothing
    proc = _pytest_benchmarks(*_smoke_args(tmp_path, "--benchmark-disable", "-k", "baseline"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    moved = list((tmp_path / "previous").glob(f"*/{results.RUNS_FILE}"))
    assert [path.read_text() for path in moved] == ["old table\n"]
    assert results.read_runs(tmp_path).cell.tolist() == ["baseline-seed1"]


@pytest.mark.e2e
def test_smoke_cells_leave_rows_extra_info_and_a_report(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    proc = _pytest_benchmarks(*_smoke_args(out, "--benchmark-only", "--benchmark-json", str(tmp_path / "bench.json")))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = results.read_runs(out)
    assert sorted(runs.cell) == ["baseline-seed1", "random-epochs12-seed1", "random-time12s-seed1", "random-trials4-seed1"]
    assert runs.test_accuracy.between(0.1, 1.0).all()
    assert set(results.read_trials(out).cell) == {"random-epochs12-seed1", "random-time12s-seed1", "random-trials4-seed1"}
    benchmarks = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]
    extra = {b["name"]: b["extra_info"] for b in benchmarks}
    assert extra["test_tuner[random-trials4-seed1]"]["trials_completed"] == 4
    assert extra["test_tuner[random-trials4-seed1]"]["stopped_by"] == "trials"
    assert extra["test_baseline[seed1]"]["test_accuracy"] == pytest.approx(runs.set_index("cell").test_accuracy["baseline-seed1"])
    assert extra["test_baseline[seed1]"]["gpu"] == "no GPU"
    assert "test accuracy against the baseline" in proc.stdout
    assert (out / "report.md").is_file()
