"""The replay profile end to end: real tuners searching through protocol.run with the ReplayTrainer, on a synthetic
table (tests/synthetic_tables.py) said to be measured on the shipped subset; its rows, the results model's refusal to
mix them with real ones, the suite and the CLI, and the one-line refusals of what a table cannot replay.

Not marked e2e: tests/conftest.py refuses every Keras fit here, so each run below also shows that a replay trains
nothing."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import synthetic_tables

from fmbench import backend, cli, data, history, profiles, protocol, resultset, run_rows, suite
from fmbench.models import mlp
from fmbench.replay import fidelity
from fmbench.replay import table as tables
from fmbench.replay.surrogate import MODEL, Surrogate
from fmbench.report import document
from fmbench.results import ResultsError
from fmbench.search.distributed import options, serving
from fmbench.spec import Budget, RunResult, RunSpec, SpecError

REPO = Path(__file__).resolve().parents[1]
REPLAY = profiles.get_profile("replay")
EPOCHS100, TIME60 = Budget(max_epochs=100), Budget(max_seconds=60)
# The backend the suite's child session runs on: the one this run of the tests is on.
BACKEND = os.environ.get("KERAS_BACKEND") or backend.DEFAULT


@pytest.fixture(scope="module")
def split(subset_dir):
    return data.load(subset_dir, REPLAY.sizes)  # the whole subset: the replay profile's sizes


@pytest.fixture(scope="module")
def measured(split):
    labels = {"train": split.y_train, "val": split.y_val, "test": split.y_test}
    return synthetic_tables.make(n_configs=60, epochs=REPLAY.epochs, noise_configs=20, labels=labels)


@pytest.fixture(scope="module")
def table_dir(measured, tmp_path_factory) -> Path:
    return synthetic_tables.save(tmp_path_factory.mktemp("replay-table"), measured)


@pytest.fixture(scope="module")
def surrogate(measured) -> Surrogate:
    return Surrogate.fit(measured)  # the ReplayTrainer's own: the same rows, the same seed


def _spec(table_dir: Path, tuner: str = "random", budget: Budget = EPOCHS100, seed: int = 1) -> RunSpec:
    return dataclasses.replace(REPLAY.spec(tuner, seed, budget), replay_table=str(table_dir))


@pytest.fixture(scope="module")
def replayed(split, table_dir):
    """replayed(tuner, budget) -> (RunResult, wall seconds), each run once per module."""
    cache: dict[tuple, tuple[RunResult, float]] = {}

    def get(tuner: str, budget: Budget) -> tuple[RunResult, float]:
        if (tuner, budget) not in cache:
            started = time.monotonic()
            result = protocol.run(_spec(table_dir, tuner, budget), split, progress=lambda line: None)
            cache[tuner, budget] = result, time.monotonic() - started
        return cache[tuner, budget]

    return get


@pytest.fixture
def this_backend(monkeypatch):
    monkeypatch.setattr(backend, "select", lambda *args: None)  # this process's Keras backend stays as it is


def _table_seconds(surrogate: Surrogate, values: dict, epochs: int, scored: bool) -> float:
    """What the replay charges a fresh (or promoted) fit of a configuration the table did not measure: the model's
    build, the first epoch's trace, its epochs, and the first scoring."""
    fit = surrogate.fit_seconds(values)
    return fit.build + fit.compile + epochs * fit.epoch + (fit.score if scored else 0.0)


# --- the profile ---------------------------------------------------------------------------------------------------


def test_the_replay_gate_profile_is_the_replay_profile_without_its_slow_tuner() -> None:
    gate = profiles.get_profile("replay-gate")
    assert dataclasses.replace(gate, name=REPLAY.name, description=REPLAY.description, tuners=REPLAY.tuners) == REPLAY
    assert gate.tuners == ("random", "hyperband", "tpe", "tpe-hyperband")  # no Bayesian optimisation: 15 s a seed
    assert {s.trainer for s in gate.expand(seeds=(1,))} == {"replay"}


def test_the_replay_profile_is_standards_100_epoch_cells_replayed() -> None:
    standard = profiles.get_profile("standard")
    same = ("sizes", "epochs", "batch_size", "hyperband_factor", "space", "backend")
    assert {name: getattr(REPLAY, name) for name in same} == {name: getattr(standard, name) for name in same}
    assert REPLAY.budgets == (Budget(max_epochs=100),) and REPLAY.budgets[0] in standard.budgets
    assert (REPLAY.trainer, REPLAY.replay_table) == ("replay", "results/replay-table")
    assert REPLAY.tuners == ("random", "hyperband", "bayesian", "tpe") and REPLAY.seeds == tuple(range(1, 201))
    cells = REPLAY.expand(seeds=(1,))
    assert all((s.trainer, s.replay_table) == ("replay", "results/replay-table") for s in cells)
    # The same cells and search seeds as standard's: a replayed cell proposes what the real one proposed (cells[0]
    # is the baseline, whose budget is none).
    real = [s for s in standard.expand(REPLAY.tuners, seeds=(1,)) if s.budget in (cells[0].budget, *REPLAY.budgets)]
    assert [(s.cell, s.search_seed) for s in cells] == [(s.cell, s.search_seed) for s in real]


# --- searches: seconds are the table's, and nothing trains ---------------------------------------------------------


@pytest.mark.parametrize("tuner", ["random", "hyperband", "bayesian", "tpe"])
def test_a_100_epoch_search_replays_in_seconds_with_the_tables_seconds(replayed, surrogate, tuner) -> None:
    result, wall = replayed(tuner, EPOCHS100)
    assert result.error == "" and result.stopped_by == "epochs" and result.search_epochs == 100
    assert result.test_accuracy is not None and math.isnan(result.test_loss)  # a table holds no loss
    for trial in result.trials:  # each trial costs the table's seconds, not the microseconds of its lookups
        expected = _table_seconds(surrogate, trial.hyperparameters, trial.epochs, trial.status == "COMPLETED")
        assert trial.seconds == pytest.approx(expected, abs=0.3), trial
    table_seconds = sum(trial.seconds for trial in result.trials)
    assert wall < 30 and wall < table_seconds / 3
    assert result.search_seconds >= table_seconds
    best = _table_seconds(surrogate, result.best_hyperparameters, REPLAY.epochs, scored=False)
    assert result.retrain_seconds == pytest.approx(best, abs=0.3)
    assert result.evaluate_seconds == pytest.approx(surrogate.fit_seconds(result.best_hyperparameters).score, abs=0.3)
    if tuner == "hyperband":
        assert result.brackets_completed >= 1  # promotions continue their parents' curves


def test_a_time_budget_is_spent_in_table_seconds(replayed, surrogate) -> None:
    result, wall = replayed("random", TIME60)
    assert result.error == "" and result.stopped_by == "time"
    assert result.search_seconds >= 60 and wall < 60 / 3
    cut = result.trials[-1]
    assert cut.status == "CUT" and cut.val_accuracy is None  # the budget stopped it inside an epoch
    # Cut at the first step group past the deadline: the overrun is at most an epoch and its trace.
    fit = surrogate.fit_seconds(cut.hyperparameters)
    assert 0 <= result.time_overrun_seconds <= fit.compile + fit.epoch + 0.3


def test_the_baseline_is_replayed_through_the_same_final_fit(replayed) -> None:
    result, wall = replayed("baseline", Budget())
    assert result.error == "" and result.best_hyperparameters == mlp.BASELINE_HPS
    assert result.best_val_accuracy is not None and result.retrain_seconds > wall


def test_nothing_of_this_machine_is_claimed_as_measured(replayed) -> None:
    result, _ = replayed("random", EPOCHS100)
    for summary in (result.telemetry, *(trial.telemetry for trial in result.trials)):
        figures = dataclasses.asdict(summary)
        figures.pop("samples")
        assert set(figures.values()) == {None}, summary


# --- rows ----------------------------------------------------------------------------------------------------------


def test_rows_say_they_were_replayed_and_from_which_table(replayed, table_dir, tmp_path) -> None:
    result, _ = replayed("random", EPOCHS100)
    run_rows.save_run(tmp_path, result)
    loaded = resultset.load(tmp_path)
    assert loaded.runs[["trainer", "replay_table"]].values.tolist() == [["replay", str(table_dir)]]
    assert set(loaded.trials["trainer"]) == {"replay"} and len(loaded.trials) == len(result.trials)
    assert loaded.runs["test_loss"].isna().all() and loaded.runs["cpu_util_mean"].isna().all()


def test_a_replayed_report_says_its_seconds_and_accuracies_are_the_tables(replayed, table_dir, tmp_path) -> None:
    for tuner, budget in (("baseline", Budget()), ("random", EPOCHS100)):
        run_rows.save_run(tmp_path, replayed(tuner, budget)[0])
    text = document.write_report([tmp_path]).read_text()
    assert f"- Replayed from the learning-curve table {table_dir}: accuracies and seconds are the table's" in text
    assert "table s: search / retrain / evaluate" in text and "wall s: search" not in text


def test_committed_rows_without_a_trainer_column_load_as_real_keras_rows() -> None:
    loaded = resultset.load(REPO / "results" / "smoke")  # written before rows named their trainer; read only
    assert set(loaded.runs["trainer"]) == {"keras"} and set(loaded.runs["replay_table"]) == {""}
    assert set(loaded.trials["trainer"]) == {"keras"}


@pytest.fixture
def mixed(replayed, tmp_path) -> list[Path]:
    """Two folders: a replayed run's rows, and the same run's rows as if it had been trained for real."""
    result, _ = replayed("random", EPOCHS100)
    real = dataclasses.replace(
        result, run_id="real-1", spec=dataclasses.replace(result.spec, trainer="keras", replay_table="")
    )
    run_rows.save_run(tmp_path / "replayed", result)
    run_rows.save_run(tmp_path / "real", real)
    return [tmp_path / "replayed", tmp_path / "real"]


def test_the_results_model_refuses_to_mix_replayed_and_real_rows(mixed) -> None:
    with pytest.raises(ResultsError, match="replayed and real rows in one comparison") as excinfo:
        resultset.load(mixed)
    assert "\n" not in str(excinfo.value) and "keras and replay" in str(excinfo.value)


def test_a_history_keeps_replayed_rows_on_a_line_of_their_own(mixed) -> None:
    replayed, real = (history.machine_of(resultset.load(folder).runs).iloc[0] for folder in mixed)
    assert replayed == f"{real}, replayed"


@pytest.mark.parametrize("command", [["report"], ["check", "--reference", "unread.json"]])
def test_report_and_check_refuse_a_mix_in_one_line(this_backend, mixed, command, capsys) -> None:
    assert cli.main([command[0], *map(str, mixed), *command[1:]]) == 2
    error = capsys.readouterr().err
    assert "replayed and real rows in one comparison" in error and error.count("\n") == 1


def test_resuming_a_folder_of_the_other_trainer_is_refused(replayed, tmp_path) -> None:
    result, _ = replayed("random", EPOCHS100)
    run_rows.save_run(tmp_path, result)
    ran_on = resultset.load(tmp_path).runs["keras_backend"].iloc[0]
    assert suite.finished_cells(tmp_path, ran_on, "replay") == {result.spec.cell}
    with pytest.raises(ResultsError, match="trained by replay and this session's by keras"):
        suite.finished_cells(tmp_path, ran_on, "keras")


# --- what a table cannot replay is refused in one line -------------------------------------------------------------


@pytest.mark.parametrize(
    "change, words",
    [
        ({"space": "cnn"}, "learning curves of the mlp space, not cnn"),
        ({"tuner": "sklearn"}, "tuner 'sklearn' trains sklearn models, which a replay table does not hold"),
        ({"tuner": "sklearn-baseline", "budget": Budget()}, "trains sklearn models"),
        ({"replay_table": ""}, "needs its table folder (replay_table): build one with `fmbench table build`"),
        ({"trainer": "keras"}, "a replay table (t) is for replayed runs"),
        ({"trainer": "magic"}, "unknown trainer 'magic'"),
    ],
)
def test_a_spec_a_table_cannot_replay_is_refused_in_one_line(change, words) -> None:
    spec = {"tuner": "random", "seed": 1, "budget": Budget(max_trials=3), "trainer": "replay", "replay_table": "t"}
    with pytest.raises(SpecError) as excinfo:
        RunSpec(**{**spec, **change})
    assert words in str(excinfo.value) and "\n" not in str(excinfo.value)


def _break(directory: Path, how: str, measured) -> None:
    if how == "no folder":
        return
    if how == "fewer epochs":
        synthetic_tables.save(directory, synthetic_tables.make(n_configs=10, epochs=4))
        return
    synthetic_tables.save(directory, measured)
    if how == "header not JSON":
        (directory / tables.HEADER_FILE).write_text("{settings")
    elif how == "header without settings":
        (directory / tables.HEADER_FILE).write_text('{"sessions": []}')
    elif how == "table file empty":
        (directory / tables.TABLE_FILE).write_bytes(b"")
    elif how == "a cell not a number":
        row = measured.rows.iloc[0].to_dict() | {"config_id": 999, "val_accuracy_1": "n/a"}
        tables.append_rows(directory, [row])


BROKEN = ("no folder", "header not JSON", "header without settings", "table file empty", "a cell not a number")


@pytest.mark.parametrize("how", [*BROKEN, "fewer epochs"])
def test_a_table_that_cannot_replay_the_run_is_refused_in_one_line_naming_the_build(
    how, measured, split, tmp_path
) -> None:
    directory = tmp_path / "table"
    _break(directory, how, measured)
    with pytest.raises(SpecError) as excinfo:  # bad input, before anything runs: not an error row
        protocol.run(_spec(directory), split, progress=lambda line: None)
    message = str(excinfo.value)
    assert "`fmbench table build" in message and "\n" not in message, message


def test_an_empty_table_is_refused_before_it_replays(tmp_path, measured, split) -> None:
    tables.create_or_check(tmp_path, measured.settings)  # a header, no fit measured yet
    with pytest.raises(SpecError, match="no usable measured fits.*`fmbench table build`"):
        protocol.run(_spec(tmp_path), split, progress=lambda line: None)


def test_the_distributed_chief_refuses_a_replayed_run(table_dir, tmp_path) -> None:
    spec = _spec(table_dir)
    args = types.SimpleNamespace(workers=2, role=None, oracle_address=None, run_dir=None)
    with pytest.raises(SpecError, match="worker processes, which replay no table"):
        options.check_options(args, spec)
    chief = serving.Chief(types.SimpleNamespace(), "127.0.0.1", 0, 2, None, None, 60.0)
    with pytest.raises(SpecError, match="worker processes, which replay no table"):
        chief.search(spec, None, None, str(tmp_path), None, print)
    assert not chief.procs  # no worker started


# --- the CLI and the benchmark suite -------------------------------------------------------------------------------


def test_fmbench_run_replays_a_cell_from_the_table_it_is_given(this_backend, table_dir, subset_dir, tmp_path, capsys):
    args = ["run", "--profile", "replay", "--replay-table", str(table_dir), "--tuner", "tpe", "--max-epochs", "30"]
    assert cli.main([*args, "--data-dir", str(subset_dir), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"replayed from {table_dir}" in out and "table seconds" in out
    runs = resultset.load(tmp_path).runs
    assert runs[["cell", "trainer", "stopped_by"]].values.tolist() == [["tpe-epochs30-seed1", "replay", "epochs"]]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--replay-table", "no-such-table"], "no-such-table/header.json: missing"),
        (["--replay-table", "TABLE", "--workers", "2", "--max-trials", "3"], "replay no table"),
        (["--profile", "standard", "--replay-table", "TABLE"], "is for replayed runs"),
        (["--space", "cnn"], "mlp space, not cnn"),
    ],
)
def test_fmbench_run_refuses_what_it_cannot_replay_before_loading_data(this_backend, table_dir, capsys, extra, words):
    extra = [str(table_dir) if word == "TABLE" else word for word in extra]
    assert cli.main(["run", "--profile", "replay", "--tuner", "random", *extra, "--data-dir", "no-such-data"]) == 2
    error = capsys.readouterr().err
    assert words in error and error.count("\n") == 1, error


def _pytest_benchmarks(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "benchmarks/test_matrix.py", "-p", "no:cacheprovider", *args]
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_XDIST")}  # as a user's
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)


def test_the_benchmark_suite_refuses_a_missing_table_before_any_cell(tmp_path) -> None:
    proc = _pytest_benchmarks(
        "--benchmark-only", "--fmbench-profile", "replay", f"--fmbench-replay-table={tmp_path / 'none'}"
    )
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "is not a table; build one with `fmbench table build`" in proc.stderr


def test_the_benchmark_suite_replays_the_profile_from_the_table_it_is_given(table_dir, subset_dir, tmp_path) -> None:
    # Its child session is beyond tests/conftest.py's guard; the replay it runs is the one tested above.
    out = tmp_path / "out"
    proc = _pytest_benchmarks(
        "--benchmark-only",
        "--fmbench-profile",
        "replay",
        "--fmbench-seeds",
        "1",
        "--fmbench-tuners",
        "random",
        "-k",
        "baseline or epochs100",
        "--fmbench-backend",
        BACKEND,
        # One token each: a separate path argument would load the conftest.py files above it into the child.
        f"--fmbench-replay-table={table_dir}",
        f"--fmbench-data-dir={subset_dir}",
        f"--fmbench-out={out}",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    runs = resultset.load(out).runs
    assert sorted(runs["cell"]) == ["baseline-seed1", "random-epochs100-seed1"]
    assert set(runs["trainer"]) == {"replay"} and set(runs["replay_table"]) == {str(table_dir)}
    assert sorted(runs["search_epochs"]) == [0, 100]


def test_the_replay_uses_the_model_the_rule_chose_on_the_committed_table():
    """surrogate.MODEL is the accuracy model `fmbench table fit --compare` marked in the committed table's models.md:
    change one and the other must be rebuilt."""
    text = (REPO / REPLAY.replay_table / fidelity.MODELS_FILE).read_text()
    chosen = [
        line.split(" | ")[0].removeprefix("| ").removesuffix(" (chosen)")
        for line in text.splitlines()
        if line.startswith("| ") and " (chosen) | " in line
    ]
    assert chosen == [MODEL]
