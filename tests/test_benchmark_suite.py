"""The pytest-benchmark suite in benchmarks/, driven as a user drives it: `pytest benchmarks ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fmbench import backend, profiles, results, suite, telemetry
from fmbench.schema import RUN_COLUMNS

REPO = Path(__file__).resolve().parents[1]
SUBSET = REPO / "tests" / "data" / "fashion-mnist-subset"


def _pytest_benchmarks(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "benchmarks/test_matrix.py", "-p", "no:cacheprovider", *args]
    # As from a user's shell: under `make test` this test runs in an xdist worker, whose PYTEST_XDIST_* variables
    # would make pytest-benchmark in the child believe it is one too and refuse --benchmark-only.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_XDIST")}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--fmbench-profile", "nope", "unknown profile 'nope'"),
        ("--fmbench-tuners", "random,sobol", "unknown tuner 'sobol'"),
        ("--fmbench-seeds", "1,x", "--fmbench-seeds must be a comma list of seeds >= 1 or ranges"),
        ("--fmbench-seeds", "0", "--fmbench-seeds must be a comma list of seeds >= 1 or ranges"),
        ("--fmbench-shard", "0/2", "--fmbench-shard must be K/N with 1 <= K <= N"),
        ("--fmbench-shard", "3/2", "--fmbench-shard must be K/N with 1 <= K <= N"),
        ("--fmbench-shard", "2", "--fmbench-shard must be K/N with 1 <= K <= N"),
    ],
)
def test_bad_options_are_a_usage_error(option: str, value: str, message: str) -> None:
    proc = _pytest_benchmarks("--benchmark-only", option, value)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert message in proc.stderr


def test_missing_data_under_xdist_is_the_one_line_error_not_a_crashed_worker(tmp_path) -> None:
    proc = _pytest_benchmarks(
        "-n",
        "2",
        "--fmbench-profile",
        "smoke",
        "--fmbench-seeds",
        "1",
        "--fmbench-data-dir",
        str(tmp_path / "nowhere"),
        "--fmbench-out",
        str(tmp_path / "out"),
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    output = proc.stdout + proc.stderr
    assert "fmbench: " in output and "does not exist" in output and "crashed" not in output
    assert not (tmp_path / "out" / "runs.csv").exists()


def test_shards_split_the_cells_into_disjoint_deterministic_shares() -> None:
    specs = suite.selected_specs("smoke", None, None)
    shares = [suite.shard(specs, f"{k}/3") for k in (1, 2, 3)]
    assert sorted((s.cell for share in shares for s in share), key=[s.cell for s in specs].index) == [
        s.cell for s in specs
    ]
    assert [len(share) for share in shares] == [16, 16, 16]  # 48 smoke cells, round robin
    assert suite.shard(specs, "2/3") == shares[1]  # the same share on every host
    assert suite.shard(specs, "1/1") == specs and suite.shard(specs, None) == specs


# The backend the child sessions run on (and the rows written for them to resume say): the one this run of the tests
# is on (`KERAS_BACKEND=jax make test` runs them all on JAX).
BACKEND = os.environ.get("KERAS_BACKEND") or backend.DEFAULT


def _smoke_args(out: Path, *extra: str) -> list[str]:
    return [
        "--fmbench-backend",
        BACKEND,
        "--fmbench-profile",
        "smoke",
        "--fmbench-tuners",
        "random",
        "--fmbench-seeds",
        "1",
        # One token: pytest loads the conftest.py files above every argument that names an existing path, so a
        # separate "tests/data/..." would load tests/conftest.py (and its training guard) into the child.
        f"--fmbench-data-dir={SUBSET}",
        "--fmbench-out",
        str(out),
        *extra,
    ]


def test_the_other_libraries_tuners_and_the_sklearn_baseline_are_cells(tmp_path: Path) -> None:
    proc = _pytest_benchmarks(
        "--co",
        "-q",
        "--fmbench-profile",
        "smoke",
        "--fmbench-seeds",
        "1",
        "--fmbench-tuners",
        "tpe,tpe-hyperband,grid,sklearn,sklearn-baseline",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for cell in (
        "test_baseline[seed1]",
        "test_baseline[sklearn-baseline-seed1]",
        "test_tuner[tpe-trials4-seed1]",
        "test_tuner[tpe-hyperband-epochs12-seed1]",
        "test_tuner[grid-time20s-seed1]",
        "test_tuner[sklearn-trials4-seed1]",
    ):
        assert cell in proc.stdout, cell
    assert "sklearn-baseline-trials4" not in proc.stdout, "a fixed model runs once per seed, without a budget"
    assert "sklearn-epochs12" not in proc.stdout, "scikit-learn trains no epochs"


def _write_rows(directory: Path, *cells: tuple[str, str, float | None, str]) -> None:
    """runs.csv rows through the real writer, valid for the results model, from (cell, started_at, test_accuracy,
    stopped_by); a row without an accuracy was killed (its error says so). None ran trials: no trials.csv is needed."""
    rows = []
    for i, (cell, started, accuracy, stopped) in enumerate(cells):
        name, _, seed = cell.rpartition("-seed")
        tuner, _, budget = name.partition("-")
        finished = {"best_val_accuracy": accuracy, "search_seconds": 1.0, "retrain_seconds": 1.0}
        finished |= {"evaluate_seconds": 0.1, "trials_completed": 0, "trials_failed": 0, "search_epochs": 0}
        rows.append(
            {column: None for column in RUN_COLUMNS}
            | (finished if accuracy else {})
            | {
                "run_id": f"{cell}-{i}",
                "profile": "smoke",
                "cell": cell,
                "tuner": tuner,
                "budget": budget or "none",
                "seed": int(seed),
                "started_at": started,
                "test_accuracy": accuracy,
                "stopped_by": stopped,
                "error": "" if accuracy else "killed",
                "keras_backend": BACKEND,
            }
        )
    results.append_rows(directory / results.RUNS_FILE, rows, RUN_COLUMNS)


RESUMED = (
    ("baseline-seed1", "2026-01-01T10:00:00+00:00", None, "error"),  # failed, then rerun: finished
    ("baseline-seed1", "2026-01-01T11:00:00+00:00", 0.81, "trials"),
    ("random-trials4-seed1", "2026-01-01T12:00:00+00:00", 0.80, "trials"),  # finished, then failed: runs again
    ("random-trials4-seed1", "2026-01-01T13:00:00+00:00", None, "error"),
    ("random-time20s-seed1", "2026-01-01T10:30:00+00:00", None, "time"),  # no accuracy: runs again
)


@pytest.mark.parametrize("order", [1, -1], ids=["in file order", "reversed"])
def test_resume_counts_a_cell_finished_only_when_its_latest_row_succeeded(tmp_path: Path, order: int) -> None:
    _write_rows(tmp_path, *RESUMED[::order])  # row order does not matter: started_at decides
    assert suite.finished_cells(tmp_path, BACKEND) == {"baseline-seed1"}


def test_resume_in_a_fresh_folder_finds_nothing_finished(tmp_path: Path) -> None:
    assert suite.finished_cells(tmp_path / "new", BACKEND) == set()


def test_resume_over_another_backends_rows_is_refused_in_one_line(tmp_path: Path) -> None:
    _write_rows(tmp_path, *RESUMED)
    other = "jax" if BACKEND == "tensorflow" else "tensorflow"
    with pytest.raises(results.ResultsError) as excinfo:
        suite.finished_cells(tmp_path, other)
    assert str(excinfo.value) == (
        f"{tmp_path} holds rows of Keras on {BACKEND} and this session runs {other}: resume with --fmbench-backend "
        f"{BACKEND}, or write to another --fmbench-out"
    )


def test_resume_over_a_malformed_folder_is_refused_in_one_line(tmp_path: Path) -> None:
    """Resume reads through the validating loader: a row without its tuner is named, not guessed around."""
    _write_rows(tmp_path, *RESUMED)
    runs = pd.read_csv(tmp_path / results.RUNS_FILE, dtype=str, keep_default_na=False)
    runs.loc[1, "tuner"] = ""
    runs.to_csv(tmp_path / results.RUNS_FILE, index=False)
    with pytest.raises(results.ResultsError) as excinfo:
        suite.finished_cells(tmp_path, BACKEND)
    assert (
        str(excinfo.value)
        == f"{tmp_path / results.RUNS_FILE}: line 3: column tuner is empty; fix or delete the row and rerun"
    )


@pytest.mark.e2e  # the child pytest trains the baseline cell, out of tests/conftest.py's sight
def test_resume_skips_finished_cells_and_reruns_failed_ones_keeping_the_failed_row(tmp_path: Path) -> None:
    _write_rows(
        tmp_path,
        ("baseline-seed1", "2026-01-01T10:00:00+00:00", None, "error"),
        ("random-trials4-seed1", "2026-01-01T10:00:00+00:00", 0.8, "trials"),
    )
    proc = _pytest_benchmarks(
        *_smoke_args(tmp_path, "--fmbench-resume", "-rs", "--benchmark-disable", "-k", "baseline or trials4")
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 skipped" in proc.stdout and "random-trials4-seed1 finished in" in proc.stdout
    runs = results.read_runs(tmp_path)
    assert runs.cell.tolist() == ["baseline-seed1", "random-trials4-seed1", "baseline-seed1"]  # the failed row stays
    assert runs.started_at.iloc[2] > runs.started_at.iloc[0] and runs.test_accuracy.iloc[2] > 0
    assert suite.finished_cells(tmp_path, BACKEND) == {"baseline-seed1", "random-trials4-seed1"}


@pytest.mark.e2e  # the child pytest trains the baseline cell, out of tests/conftest.py's sight
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
    assert sorted(runs.cell) == [
        "baseline-seed1",
        "random-epochs12-seed1",
        "random-time20s-seed1",
        "random-trials4-seed1",
    ]
    assert runs.test_accuracy.between(0.1, 1.0).all()
    assert set(results.read_trials(out).cell) == {
        "random-epochs12-seed1",
        "random-time20s-seed1",
        "random-trials4-seed1",
    }
    benchmarks = json.loads((tmp_path / "bench.json").read_text())["benchmarks"]
    extra = {b["name"]: b["extra_info"] for b in benchmarks}
    stored = {b["name"]: (b["group"], b["params"]) for b in benchmarks}  # what `pytest-benchmark compare` groups by
    assert stored["test_tuner[random-trials4-seed1]"] == (
        "budget trials4",
        {"profile": "smoke", "tuner": "random", "budget": "trials4", "seed": 1},
    )
    assert stored["test_baseline[seed1]"] == (
        "baseline",
        {"profile": "smoke", "tuner": "baseline", "budget": "none", "seed": 1},
    )
    assert extra["test_tuner[random-trials4-seed1]"]["trials_completed"] == 4
    assert extra["test_tuner[random-trials4-seed1]"]["stopped_by"] == "trials"
    assert extra["test_baseline[seed1]"]["test_accuracy"] == pytest.approx(
        runs.set_index("cell").test_accuracy["baseline-seed1"]
    )
    if telemetry.gpu_names():  # what this machine has, as the subprocess sees it
        assert "gpu" not in extra["test_baseline[seed1]"] and extra["test_baseline[seed1]"]["gpu_util_mean"] >= 0
    else:
        assert extra["test_baseline[seed1]"]["gpu"] == "no GPU" and "gpu_util_mean" not in extra["test_baseline[seed1]"]
    assert runs.gpu_model.unique().tolist() == [", ".join(telemetry.gpu_names()) or "no GPU"]
    assert "test accuracy against the baseline" in proc.stdout
    assert (out / "report.md").is_file()


@pytest.mark.e2e
def test_parallel_cells_leave_complete_unique_rows_and_one_report(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    out.mkdir()
    (out / results.RUNS_FILE).write_text("old table\n")
    # The time-budget cells add 20 s each and nothing the other cells do not show about parallel writers.
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks",
        "-p",
        "no:cacheprovider",
        "-n",
        "2",
        "-rs",
        "-k",
        "not time20s",
        *_smoke_args(out, "--fmbench-seeds", "1,2"),
    ]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = results.read_runs(out)
    cells = [s.cell for s in profiles.get_profile("smoke").expand(("random",), (1, 2)) if "time20s" not in s.cell]
    assert sorted(runs.cell) == sorted(cells) and runs.test_accuracy.notna().all()  # every cell once, none lost
    trials = results.read_trials(out)
    assert not trials.duplicated(["cell", "trial_id"]).any()
    assert set(trials.cell) == {cell for cell in cells if not cell.startswith("baseline")}
    assert [p.read_text() for p in out.glob(f"previous/*/{results.RUNS_FILE}")] == ["old table\n"]  # moved aside once
    assert proc.stdout.count("test accuracy against the baseline") == 1 and (out / "report.md").is_file()
    assert "measures the machine itself: run it without -n" in proc.stdout  # scale-out and sampler benchmarks


def test_session_clock_estimates_the_rest_at_the_pace_so_far():
    now = [0.0]
    clock = suite.SessionClock(total=5, clock=lambda: now[0])
    assert clock.line("baseline-seed1") == "cell 1 of 5 (baseline-seed1)", "no estimate before a cell finished"
    now[0] = 120.0
    clock.cell_done()
    clock.cell_done()  # two cells in 2 minutes: 3 left take about 3
    assert clock.line("random-epochs12-seed1") == "cell 3 of 5 (random-epochs12-seed1), about 3 min left"
