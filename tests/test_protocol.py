"""fmbench.protocol (with the keras_tuner backend): the run protocol on tiny real data (TensorFlow on CPU).

Training here is deliberately tiny: the subset at 300 train / 100 val / 100 test images, 1 epoch per trial,
batch 64, 2 trials (see conftest.subset_split). Most of each run's seconds are TensorFlow tracing a new model,
so the runs are cached per module and shared between tests that only read them. Failing-trial tests inject
the failure at model build time, so those trials never train.
"""

from __future__ import annotations

import time
from pathlib import Path

import keras
import pandas as pd
import pytest

from fmbench import cli, protocol, results
from fmbench.budget import SearchClock
from fmbench.models import mlp
from fmbench.search import base, keras_tuner
from fmbench.spec import Budget, FinalFit, RunResult, RunSpec

EPOCHS, BATCH = 1, 64


def _spec(
    tuner: str,
    seed: int = 1,
    max_trials: int | None = 2,
    max_seconds: float | None = None,
    epochs: int = EPOCHS,
    max_epochs: int | None = None,
) -> RunSpec:
    return RunSpec(
        tuner=tuner,
        seed=seed,
        budget=Budget(max_trials=max_trials, max_seconds=max_seconds, max_epochs=max_epochs),
        epochs=epochs,
        batch_size=BATCH,
        profile="test",
    )


def _run(spec: RunSpec, split) -> RunResult:
    return protocol.run(spec, split, progress=lambda line: None)


@pytest.fixture(scope="module")
def cached_run(subset_split):
    """run(tuner, seed, copy=0): each distinct (tuner, seed, copy) is run once per module."""
    cache: dict[tuple, RunResult] = {}

    def get(tuner: str, seed: int = 1, copy: int = 0) -> RunResult:
        key = (tuner, seed, copy)
        if key not in cache:
            cache[key] = _run(_spec(tuner, seed), subset_split)
        return cache[key]

    return get


def _hps(result: RunResult) -> list[dict]:
    return [trial.hyperparameters for trial in result.trials]


# --- determinism ---------------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_same_seed_gives_same_trials_and_same_test_accuracy(cached_run) -> None:
    first, second = cached_run("random", 1, copy=0), cached_run("random", 1, copy=1)
    assert first.error == "" and second.error == ""
    assert _hps(first) == _hps(second)
    assert [t.val_accuracy for t in first.trials] == [t.val_accuracy for t in second.trials]
    assert first.best_hyperparameters == second.best_hyperparameters
    assert first.test_accuracy == second.test_accuracy
    assert first.test_loss == pytest.approx(second.test_loss, rel=1e-6)
    assert first.run_id != second.run_id, "each run needs its own id"


@pytest.mark.e2e
def test_different_seeds_try_different_hyperparameters(cached_run) -> None:
    one, two = cached_run("random", 1), cached_run("random", 2)
    assert _hps(one) != _hps(two)
    assert _hps(one)[0] != _hps(two)[0], "even the first trial should differ between seeds"


@pytest.mark.parametrize("tuner", ["hyperband", "bayesian"])
def test_oracle_seed_drives_the_first_values(tuner: str) -> None:
    # No training: the first values each oracle proposes depend on the seed and only on it.
    def first_values(seed: int) -> dict:
        _, oracle = keras_tuner.ORACLES[tuner](_spec(tuner, seed=seed))
        oracle.clock = SearchClock(Budget(max_trials=10))
        hp = oracle.get_space()
        mlp.build_model(hp)
        oracle.update_space(hp)
        return {k: v for k, v in oracle.populate_space("0000")["values"].items() if not k.startswith("tuner/")}

    assert first_values(7) == first_values(7)
    assert first_values(7) != first_values(8)


# --- trial budget --------------------------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("tuner", ["random", "hyperband", "bayesian"])
def test_trials_budget_runs_exactly_that_many_trials(tuner: str, cached_run) -> None:
    result = cached_run(tuner)
    assert result.error == ""
    assert len(result.trials) == 2, [t.trial_id for t in result.trials]
    assert (result.trials_completed, result.trials_failed) == (2, 0)
    assert result.stopped_by == "trials"
    assert result.time_overrun_seconds is None  # no time budget
    assert all(t.status == "COMPLETED" and t.epochs >= 1 and t.val_accuracy is not None for t in result.trials)
    assert len({t.trial_id for t in result.trials}) == 2
    assert result.search_epochs == sum(t.epochs for t in result.trials)
    # Trials are timed in order and inside the search.
    first, second = result.trials
    assert 0 <= first.started_seconds < second.started_seconds
    assert first.started_seconds + first.seconds <= second.started_seconds + 1e-6
    assert second.started_seconds + second.seconds <= result.search_seconds + 1e-6
    # The best trial is the one retrained, and its hyperparameters are only the active ones.
    best = max(result.trials, key=lambda t: t.val_accuracy)
    assert result.best_hyperparameters == best.hyperparameters
    assert result.best_val_accuracy == best.val_accuracy
    assert not any(key.startswith("tuner/") for t in result.trials for key in t.hyperparameters)
    assert result.retrain_epochs == EPOCHS
    assert result.test_accuracy is not None and 0.1 < result.test_accuracy <= 1.0
    assert result.search_seconds > 0 and result.retrain_seconds > 0 and result.evaluate_seconds > 0


@pytest.mark.e2e
def test_bayesian_records_num_initial_points(cached_run) -> None:
    result = cached_run("bayesian")
    assert result.num_initial_points == base.initial_points(result.spec) == 1
    assert cached_run("random").num_initial_points is None
    assert cached_run("hyperband").num_initial_points is None


@pytest.mark.parametrize(
    "max_trials, max_epochs, epochs, expected",
    [
        (2, None, 1, 1),
        (6, None, 1, 3),
        (9, None, 1, 4),
        (30, None, 1, 15),
        (None, 45, 9, 2),
        (None, 8, 9, 1),
        (6, 90, 9, 3),
        (None, None, 9, 3),
    ],
)
def test_bayesian_model_picks_at_least_half_the_trials(max_trials, max_epochs, epochs, expected) -> None:
    # keras-tuner's default here would be 3 x 12 = 36 random trials: any affordable budget would be random search.
    spec = _spec(
        "bayesian",
        max_trials=max_trials,
        max_epochs=max_epochs,
        max_seconds=None if max_trials or max_epochs else 60,
        epochs=epochs,
    )
    _, oracle = keras_tuner.ORACLES["bayesian"](spec)
    assert oracle.num_initial_points == expected == base.initial_points(spec)


@pytest.mark.e2e
def test_baseline_trains_the_baseline_model(subset_split) -> None:
    result = _run(_spec("baseline", max_trials=None), subset_split)
    assert result.error == "" and result.stopped_by == "trials"
    assert result.best_hyperparameters == mlp.BASELINE_HPS
    assert result.trials == () and result.search_seconds == 0.0
    assert result.retrain_epochs == EPOCHS and result.best_val_accuracy is not None
    assert 0.1 < result.test_accuracy <= 1.0


# --- time budget ---------------------------------------------------------------------------------------------------


class _EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = getattr(self, "seconds", []) + [time.monotonic() - self._start]


@pytest.mark.e2e
def test_time_budget_stops_the_running_fit(subset_split, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_seconds=8 with 100,000 epochs per trial: without the deadline callback one trial alone would run hours.
    (8 s, not less: on JAX, keras-tuner's set-up, which builds every layer count's model once, takes seconds before
    the first trial starts, and the trial must start before the deadline to be cut by it.)"""
    max_seconds, epochs = 8.0, 100_000

    # One epoch's cost on this machine now, first epoch (with TF tracing) and a steady one, same data and batch.
    timer = _EpochTimer()
    reference = mlp.make_model(mlp.BASELINE_HPS)
    reference.fit(
        subset_split.x_train,
        subset_split.y_train,
        validation_data=(subset_split.x_val, subset_split.y_val),
        epochs=3,
        batch_size=BATCH,
        verbose=0,
        callbacks=[timer],
    )
    first_epoch, steady_epoch = timer.seconds[0], min(timer.seconds[1:])
    allowed_overrun = 2 * first_epoch + 2.0  # the epoch in flight (maybe a new model's first) + trial bookkeeping
    assert epochs * steady_epoch > 5 * allowed_overrun, "test premise: an uncut trial must far exceed the bound"

    # The retrain would also take 100,000 epochs; this test is about the search, so the retrain is stubbed.
    def fake_final_fit(spec, split, trainer, values, score_validation):
        return FinalFit(test_accuracy=0.5, test_loss=1.0)

    monkeypatch.setattr(protocol, "final_fit", fake_final_fit)
    spec = _spec("random", max_trials=None, max_seconds=max_seconds, epochs=epochs)
    started = time.monotonic()
    result = _run(spec, subset_split)
    wall = time.monotonic() - started

    # The only trial was cut by the deadline: it has no score at the fidelity it asked for, so nothing
    # can be retrained; the row says the budget ended first, what to raise, and still records the cut trial.
    budget_message = f"the time{max_seconds:g}s budget ended before any trial finished its {epochs} epochs"
    assert result.error == f"{budget_message} (1 cut): raise --max-seconds"
    assert result.stopped_by == "time"
    assert result.search_seconds >= max_seconds
    assert result.time_overrun_seconds == pytest.approx(result.search_seconds - max_seconds, abs=1e-6)
    assert result.time_overrun_seconds <= allowed_overrun, (
        f"overran by {result.time_overrun_seconds:.2f}s; one epoch is {first_epoch:.2f}s first, "
        f"{steady_epoch:.3f}s steady"
    )
    assert wall <= max_seconds + allowed_overrun + 5.0
    assert [t.status for t in result.trials] == ["CUT"], "the trial cut by the deadline is still recorded"
    assert all(t.epochs < epochs and t.val_accuracy is None for t in result.trials), (
        "the deadline must stop the running fit"
    )
    assert (result.trials_completed, result.trials_cut, result.trials_failed) == (0, 1, 0)


@pytest.mark.e2e
def test_both_budgets_trials_first(subset_split) -> None:
    result = _run(_spec("random", max_trials=1, max_seconds=600), subset_split)
    assert result.stopped_by == "trials" and len(result.trials) == 1
    assert result.time_overrun_seconds == 0.0  # a time budget was set and not overrun


# --- epoch budget and Hyperband --------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_epoch_budget_cuts_the_trial_that_would_overspend_it(subset_split) -> None:
    result = _run(_spec("random", max_trials=None, max_epochs=3, epochs=2), subset_split)
    assert result.error == "" and result.stopped_by == "epochs"
    assert [(t.status, t.epochs) for t in result.trials] == [("COMPLETED", 2), ("CUT", 1)]
    assert result.search_epochs == 3 and result.trials_cut == 1
    cut = result.trials[1]
    assert cut.val_accuracy is None, "a cut trial is not scored on the epochs it did not train"
    assert result.best_hyperparameters == result.trials[0].hyperparameters


@pytest.mark.parametrize("max_epochs, factor", [(3, 3), (9, 3), (10, 3), (4, 2)])
def test_first_bracket_arithmetic_matches_keras_tuners_oracle(max_epochs: int, factor: int, tmp_path: Path) -> None:
    # Drive keras-tuner's own oracle with made-up scores (no training) through its first bracket.
    import keras_tuner as kt

    from fmbench.registry import hyperband_first_bracket

    oracle = kt.oracles.HyperbandOracle(
        objective=keras_tuner.OBJECTIVE, max_epochs=max_epochs, factor=factor, hyperband_iterations=None, seed=1
    )
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    hp = kt.HyperParameters()
    mlp.build_model(hp)
    oracle.update_space(hp)
    trials, epochs = hyperband_first_bracket(max_epochs, factor)
    first_bracket = None
    for index in range(trials):
        trial = oracle.create_trial("t")
        values = trial.hyperparameters.values
        first_bracket = values["tuner/bracket"] if first_bracket is None else first_bracket
        assert values["tuner/bracket"] == first_bracket, f"trial {index} left the first bracket early"
        epochs -= values["tuner/epochs"] - values["tuner/initial_epoch"]
        oracle.update_trial(trial.trial_id, {"val_accuracy": index / 100})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert epochs == 0
    assert values["tuner/round"] == first_bracket, "the bracket's last round was reached"
    assert oracle.create_trial("t").hyperparameters.values["tuner/bracket"] != first_bracket


@pytest.mark.e2e
def test_hyperband_promotes_a_trial_from_its_parent_checkpoint(subset_split, monkeypatch, recwarn) -> None:
    """max_epochs=3, factor 3: the first bracket trains 3 one-epoch trials and promotes the best to 3 epochs."""
    loaded = []
    original_load = keras.Model.load_weights
    monkeypatch.setattr(
        keras.Model,
        "load_weights",
        lambda self, path, *a, **k: (loaded.append(str(path)), original_load(self, path, *a, **k))[1],
    )
    result = _run(_spec("hyperband", max_trials=4, epochs=3), subset_split)
    assert result.error == ""
    rounds = [(t.bracket, t.round, t.initial_epoch, t.epochs) for t in result.trials]
    assert rounds == [(1, 0, 0, 1)] * 3 + [(1, 1, 1, 2)], rounds
    first_round, promoted = result.trials[:3], result.trials[3]
    best_first = max(first_round, key=lambda t: t.val_accuracy)
    assert promoted.parent_trial_id == best_first.trial_id, "Hyperband promotes the best of the round"
    assert promoted.hyperparameters == best_first.hyperparameters
    assert len(loaded) == 1 and f"trial_{best_first.trial_id}" in loaded[0], loaded
    assert result.search_epochs == 5 and result.brackets_completed == 1
    assert all(t.parent_trial_id is None for t in first_round)
    skipped = [str(w.message) for w in recwarn if "Skipping variable loading" in str(w.message)]
    assert not skipped, "a promotion starts Adam afresh on purpose, without Keras's warning"


# --- failing trials ------------------------------------------------------------------------------------------------


@pytest.fixture
def original_make_model():
    return mlp.make_model


@pytest.mark.e2e
def test_failing_trial_is_a_row_and_the_run_goes_on(subset_split, monkeypatch, original_make_model) -> None:
    def make_model(values):
        if _in_a_trial(values) and int(values["num_layers"]) >= 2:
            raise ValueError(f"injected failure for num_layers={values['num_layers']}")
        return original_make_model(values)

    monkeypatch.setattr(mlp, "make_model", make_model)
    result = _run(_spec("random", seed=2), subset_split)
    failed = [t for t in result.trials if t.status != "COMPLETED"]
    completed = [t for t in result.trials if t.status == "COMPLETED"]
    # Premise: seed 2's two trials are one 1-layer and one deeper model.
    assert failed and completed, f"seed 2 no longer yields both kinds of trial: {_hps(result)}"
    assert len(result.trials) == 2 and result.stopped_by == "trials" and result.error == ""
    assert (result.trials_completed, result.trials_failed) == (len(completed), len(failed))
    for trial in failed:
        assert trial.status == "FAILED" and trial.val_accuracy is None and trial.epochs == 0
        assert "injected failure" in trial.error and "\n" not in trial.error
        assert trial.hyperparameters["num_layers"] >= 2
    assert result.best_hyperparameters == completed[0].hyperparameters
    assert result.test_accuracy is not None


def _in_a_trial(values: dict) -> bool:
    """Whether a build is a trial's: keras-tuner's set-up builds a model per layer count at the defaults (learning
    rate 1e-4) to declare the space; a trial samples the rate, which never lands on that bound exactly."""
    return values["learning_rate"] != 1e-4


def _fail_every_trial(monkeypatch, original_make_model) -> None:
    """Every trial's model build fails; keras-tuner's set-up builds, which declare the space, do not."""

    def make_model(values):
        if _in_a_trial(values):
            raise ValueError("injected failure")
        return original_make_model(values)

    monkeypatch.setattr(mlp, "make_model", make_model)


def test_run_where_no_trial_completes_is_an_error_row(subset_split, monkeypatch, original_make_model) -> None:
    _fail_every_trial(monkeypatch, original_make_model)
    result = _run(_spec("random"), subset_split)  # must not raise
    assert result.stopped_by == "error"
    assert (result.trials_completed, result.trials_failed) == (0, 2)
    assert len(result.trials) == 2 and all(t.status == "FAILED" for t in result.trials)
    assert "none completed" in result.error
    assert result.test_accuracy is None and result.best_hyperparameters == {}


def test_consecutive_failures_keep_the_failed_rows(subset_split, monkeypatch, original_make_model) -> None:
    # keras-tuner raises after 3 failed trials in a row; the run must still return them.
    _fail_every_trial(monkeypatch, original_make_model)
    result = _run(_spec("bayesian", max_trials=6), subset_split)
    assert result.stopped_by == "error"
    assert result.error.startswith("search stopped") and "\n" not in result.error
    assert result.trials_failed == 3 == len(result.trials) and result.trials_completed == 0
    assert result.num_initial_points == 3  # half of the 6 trials


def test_failure_before_any_trial_is_an_error_row(subset_split, monkeypatch) -> None:
    def make_model(values):
        raise ValueError("injected failure")

    monkeypatch.setattr(mlp, "make_model", make_model)
    for tuner in ("hyperband", "baseline"):
        result = protocol.run(
            _spec(tuner, max_trials=None if tuner == "baseline" else 2), subset_split, progress=lambda line: None
        )
        assert result.stopped_by == "error", tuner
        assert "injected failure" in result.error and "\n" not in result.error
        assert result.test_accuracy is None


# --- through the CLI -----------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_reused_out_dir_runs_fresh_searches(subset_dir: Path, tmp_path: Path) -> None:
    """Two identical runs into one --out: keras-tuner must not reload the first search and run zero trials.

    Smoke profile (3 epochs, batch 128) on the whole subset (1500/300/400: smaller than the profile's sizes).
    """
    args = [
        "run",
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--profile",
        "smoke",
        "--data-dir",
        str(subset_dir),
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 0
    assert cli.main(args) == 0
    runs = results.read_runs(tmp_path)
    assert len(runs) == 2 and runs["run_id"].nunique() == 2
    assert runs["trials_completed"].tolist() == [2, 2]
    assert runs["stopped_by"].tolist() == ["trials", "trials"]
    assert runs["search_epochs"].tolist() == [6, 6]  # 2 trials x 3 epochs
    trials = results.read_trials(tmp_path)
    assert trials.groupby("run_id").size().to_dict() == {run_id: 2 for run_id in runs["run_id"]}
    # Same seed: the second run repeats the first rather than continuing its search.
    first, second = (trials[trials["run_id"] == r]["hyperparameters"].tolist() for r in runs["run_id"])
    assert first == second


@pytest.mark.e2e
def test_run_row_records_the_data_sizes_actually_used(subset_dir: Path, tmp_path: Path) -> None:
    args = ["run", "--tuner", "baseline", "--profile", "smoke", "--data-dir", str(subset_dir), "--out", str(tmp_path)]
    assert cli.main(args) == 0
    runs = results.read_runs(tmp_path)
    assert (runs["train_size"][0], runs["val_size"][0], runs["test_size"][0]) == (1500, 300, 400)


def test_failed_run_exits_1_and_still_writes_its_row(
    subset_dir: Path, tmp_path: Path, monkeypatch, original_make_model
) -> None:
    _fail_every_trial(monkeypatch, original_make_model)
    args = [
        "run",
        "--tuner",
        "random",
        "--max-trials",
        "2",
        "--profile",
        "smoke",
        "--data-dir",
        str(subset_dir),
        "--out",
        str(tmp_path),
    ]
    assert cli.main(args) == 1
    runs = results.read_runs(tmp_path)
    assert len(runs) == 1 and runs["stopped_by"][0] == "error" and "none completed" in runs["error"][0]
    assert pd.isna(runs["test_accuracy"][0])
    trials = results.read_trials(tmp_path)
    assert (trials["status"] == "FAILED").all() and len(trials) == 2
