"""fmbench.search.optuna: Optuna's TPE (and its Hyperband pruner) under fmbench's budgets and rows.

Most tests replace the model with a fake whose fit drives the real callbacks (scores, budget, pruning)
through epochs and batches without TensorFlow training. Three train and are marked e2e: the real protocol on the
tiny subset, one real trial under the pruner, and both tuners through `fmbench run`.
"""

from __future__ import annotations

import math
import types
from pathlib import Path

import optuna
import pytest

from fmbench import cli, protocol, results, telemetry
from fmbench.budget import SearchClock
from fmbench.models import mlp, scoring
from fmbench.models.trainer import KerasTrainer
from fmbench.search import base
from fmbench.search import optuna as optuna_search
from fmbench.spec import Budget, RunSpec, SearchOutcome

STEPS = 4  # batches per fake epoch
NO_DATA = types.SimpleNamespace(x_train=None, y_train=None, x_val=None, y_val=None)


def _spec(
    tuner: str = "tpe", seed: int = 1, max_trials: int | None = 6, max_seconds: float | None = None, epochs: int = 3
) -> RunSpec:
    return RunSpec(
        tuner=tuner,
        seed=seed,
        budget=Budget(max_trials=max_trials, max_seconds=max_seconds),
        epochs=epochs,
        batch_size=64,
        profile="test",
    )


class FakeTime:
    """The search's clock, advanced by the fake batches: budgets are judged in exact, unloaded seconds."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeModel:
    """Stands in for a compiled Keras model: fit calls the callbacks as Keras does, without training."""

    def __init__(self, values: dict, curve, batch_seconds: float, fake_time: FakeTime):
        self.values, self.curve, self.batch_seconds, self.fake_time = values, curve, batch_seconds, fake_time
        self.stop_training = False
        self.optimizer = types.SimpleNamespace(built=True)  # nothing for fmbench.training to build

    def fit(self, x, y, epochs, batch_size, callbacks, verbose, initial_epoch=0, validation_data=None):
        for callback in callbacks:
            callback.set_model(self)
            callback.set_params({"epochs": epochs, "steps": STEPS, "verbose": verbose})
        for epoch in range(epochs):
            for callback in callbacks:
                callback.on_epoch_begin(epoch)
            for step in range(STEPS):
                self.fake_time.now += self.batch_seconds
                for callback in callbacks:
                    callback.on_train_batch_end(step)
                if self.stop_training:
                    self.values["stopped_at"] = (epoch, step)
                    break
            self.epochs_trained = epoch + 1
            logs = {"val_accuracy": self.curve(self.values, epoch)} if validation_data is not None else {}
            for callback in callbacks:
                callback.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        return types.SimpleNamespace(epoch=list(range(self.epochs_trained)))  # as keras.callbacks.History


def _rising(values: dict, epoch: int) -> float:
    """Higher learning rates score higher; every epoch adds a little."""
    return 0.5 + 0.05 * (math.log10(values["learning_rate"]) + 4) + 0.01 * epoch


@pytest.fixture
def fake_models(monkeypatch: pytest.MonkeyPatch):
    """fake_models(curve, batch_seconds=0): mlp.make_model returns FakeModels, and each fake batch
    advances the search's clock by batch_seconds; returns the values built."""
    built: list[dict] = []
    fake_time = FakeTime()
    monkeypatch.setattr(KerasTrainer, "clock", fake_time)  # the search spends its budget on its trainer's clock
    # The score after the last epoch is the curve's value there (accuracy, loss).
    monkeypatch.setattr(
        scoring, "score", lambda model, x, y: (model.curve(model.values, model.epochs_trained - 1), 0.0)
    )

    def install(curve=_rising, batch_seconds: float = 0.0) -> list[dict]:
        def make_model(values: dict, metrics=()) -> FakeModel:
            built.append(dict(values))
            return FakeModel(built[-1], curve, batch_seconds, fake_time)

        monkeypatch.setattr(mlp, "make_model", make_model)
        return built

    return install


def _search(spec: RunSpec, progress=lambda line: None) -> SearchOutcome:
    with telemetry.Sampler() as sampler:
        return optuna_search.search(spec, NO_DATA, KerasTrainer(spec), "", sampler, progress=progress)


# --- the search space ----------------------------------------------------------------------------------------------


def test_per_layer_knobs_exist_only_for_the_layers_built() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(20):
        trial = study.ask()
        values = optuna_search.suggest(trial)
        layers = values["num_layers"]
        assert set(values) == {"num_layers", "learning_rate"} | {
            f"{k}_{i}" for i in range(layers) for k in ("units", "dropout")
        }
        assert all(values[f"dropout_{i}"] in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5) for i in range(layers))
        study.tell(trial, 0.5)


# --- sampler settings and seeds ------------------------------------------------------------------------------------


def test_only_tpe_multivariate_models_the_knobs_jointly() -> None:
    joint = optuna_search.make_study(_spec(tuner="tpe-multivariate", max_trials=6)).sampler
    independent = optuna_search.make_study(_spec(max_trials=6)).sampler
    assert (joint._multivariate, joint._group) == (True, True)
    assert (independent._multivariate, independent._group) == (False, False)


def test_tpe_starts_as_bayesian_does() -> None:
    for spec in (_spec(max_trials=3), _spec(max_trials=12), _spec(max_trials=None, max_seconds=30)):
        assert optuna_search.make_study(spec).sampler._n_startup_trials == base.initial_points(spec)


def _first_values(spec: RunSpec) -> dict:
    return optuna_search.suggest(optuna_search.make_study(spec).ask())


def test_same_seed_same_first_values_and_other_seed_other_values() -> None:
    assert _first_values(_spec(seed=1)) == _first_values(_spec(seed=1))
    assert _first_values(_spec(seed=1)) != _first_values(_spec(seed=2))


def test_each_study_starts_empty() -> None:
    first = optuna_search.make_study(_spec())
    first.tell(first.ask(), 0.9)
    assert len(optuna_search.make_study(_spec()).trials) == 0


def test_the_pruner_only_in_the_hyperband_variant() -> None:
    assert isinstance(optuna_search.make_study(_spec("tpe")).pruner, optuna.pruners.NopPruner)
    assert isinstance(optuna_search.make_study(_spec("tpe-hyperband")).pruner, optuna.pruners.HyperbandPruner)


# --- the search loop with fake models ------------------------------------------------------------------------------


def test_trial_budget_runs_exactly_that_many_trials(fake_models) -> None:
    built = fake_models()
    fields = _search(_spec(max_trials=5))
    assert fields.stopped_by == "trials"
    assert len(fields.trials) == len(built) == 5
    assert all(r.status == "COMPLETED" and r.epochs == 3 for r in fields.trials)
    assert fields.search_epochs == 15 and fields.trials_completed == 5 and fields.trials_failed == 0
    assert [r.trial_id for r in fields.trials] == ["0000", "0001", "0002", "0003", "0004"]
    best = max(fields.trials, key=lambda r: r.val_accuracy)
    assert fields.best_hyperparameters == best.hyperparameters
    assert fields.best_val_accuracy == best.val_accuracy


def test_a_trial_scores_its_last_epoch_not_its_best(fake_models) -> None:
    fake_models(curve=lambda values, epoch: [0.8, 0.9, 0.7][epoch])
    fields = _search(_spec(max_trials=2))
    assert [r.val_accuracy for r in fields.trials] == [pytest.approx(0.7)] * 2


def _learning_rates(study: optuna.Study, trials: int) -> list[float]:
    """log10 learning rates a study proposes when the score rises with the learning rate."""
    rates = []
    for _ in range(trials):
        trial = study.ask()
        rates.append(math.log10(optuna_search.suggest(trial)["learning_rate"]))
        study.tell(trial, 0.5 + 0.05 * rates[-1])
    return rates


def test_tpe_model_acts_after_its_startup_trials() -> None:
    # Same seed, same objective: after the random start TPE leans to high learning rates; random search does not.
    spec = _spec(max_trials=30)
    tpe = _learning_rates(optuna_search.make_study(spec), 30)
    rand = _learning_rates(
        optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=spec.search_seed)), 30
    )
    startup = base.initial_points(spec)
    assert tpe[:startup] == rand[:startup], "the startup trials are TPE's own random sampler with the search seed"
    late_tpe, late_rand = sum(tpe[20:]) / 10, sum(rand[20:]) / 10
    # Uniform on [-4, -2] averages -3; TPE's late proposals sit in the top quarter.
    assert late_tpe > -2.5 and late_tpe > late_rand


def test_hyperband_pruner_stops_weak_trials_between_epochs(fake_models) -> None:
    fake_models()
    fields = _search(_spec("tpe-hyperband", max_trials=12, epochs=9))
    pruned = [r for r in fields.trials if r.status == "PRUNED"]
    assert pruned, "a 12-trial search with 9 epochs and factor 3 should prune some trials"
    assert all(1 <= r.epochs < 9 and r.val_accuracy is not None for r in pruned)
    assert fields.trials_completed + len(pruned) == 12 and fields.trials_failed == 0
    assert fields.search_epochs == sum(r.epochs for r in fields.trials)
    completed = [r for r in fields.trials if r.status == "COMPLETED"]
    assert fields.best_val_accuracy == max(r.val_accuracy for r in completed)


def test_plain_tpe_never_prunes(fake_models) -> None:
    fake_models()
    fields = _search(_spec("tpe", max_trials=12, epochs=9))
    assert {r.status for r in fields.trials} == {"COMPLETED"}


def test_time_budget_cuts_the_running_trial_and_starts_no_other(fake_models) -> None:
    # 0.25 s a batch, 1 s an epoch, 3 s a trial: the first trial completes, the second meets the 4.5 s deadline
    # after its second batch of its second epoch.
    built, lines = fake_models(batch_seconds=0.25), []
    fields = _search(_spec(max_trials=None, max_seconds=4.5, epochs=3), progress=lines.append)
    assert [r.status for r in fields.trials] == ["COMPLETED", "CUT"]
    assert fields.stopped_by == "time" and fields.trials_completed == 1 and fields.trials_failed == 0
    assert built[1]["stopped_at"] == (1, 1), "the fit stops at the batch that reaches the deadline"
    cut = fields.trials[1]
    assert cut.epochs == 1, "only full epochs count: the one the deadline cut does not"
    assert cut.val_accuracy is None, "no score at a fidelity it did not reach"
    assert fields.best_val_accuracy == fields.trials[0].val_accuracy
    assert "trial 0001 CUT (budget spent) epochs=1" in lines[-1], lines[-1]


def test_failed_trials_are_rows_and_three_in_a_row_end_the_search(fake_models, monkeypatch) -> None:
    def broken(values: dict, metrics=()):
        raise ValueError("no such layer\nsecond line")

    monkeypatch.setattr(mlp, "make_model", broken)
    with pytest.raises(base.SearchFailed) as excinfo:
        _search(_spec(max_trials=6))
    assert "3 trials in a row failed" in str(excinfo.value)
    records = excinfo.value.partial.trials
    assert [r.status for r in records] == ["FAILED"] * 3
    assert all(r.error == "ValueError: second line" and r.val_accuracy is None for r in records)
    assert excinfo.value.partial.trials_failed == 3


def test_optuna_tuners_refuse_the_distributed_options(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["run", "--tuner", "tpe", "--max-trials", "2", "--workers", "2"]) == 2
    assert "tpe-trials2-seed1 runs in one process" in capsys.readouterr().err


# --- the real protocol ---------------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_tpe_run_on_the_tiny_subset_gives_a_full_row(subset_split) -> None:
    spec = _spec("tpe", max_trials=3, epochs=1)
    result = protocol.run(spec, subset_split, progress=lambda line: None)
    assert result.error == "" and result.stopped_by == "trials"
    assert result.num_initial_points == 1
    assert [t.status for t in result.trials] == ["COMPLETED"] * 3
    assert result.best_val_accuracy == max(t.val_accuracy for t in result.trials)
    assert result.best_hyperparameters in [t.hyperparameters for t in result.trials]
    assert 0.1 < result.test_accuracy <= 1.0 and result.retrain_epochs == 1
    assert all(t.telemetry.samples >= 2 for t in result.trials), "a reading at each trial boundary"


@pytest.mark.e2e
def test_the_pruner_judges_every_epoch_of_a_real_trial(subset_split) -> None:
    # The pruning callback reads Keras's per-epoch val_accuracy, which exists only if the model compiles the metric.
    spec = _spec("tpe-hyperband", max_trials=1, epochs=2)
    study = optuna_search.make_study(spec)
    with telemetry.Sampler() as sampler:
        trial = study.ask()
        values = optuna_search.suggest(trial)
        record = optuna_search._run_trial(
            spec, subset_split, KerasTrainer(spec), study, trial, values, "random", SearchClock(spec.budget), sampler
        )
    assert record.status == "COMPLETED" and record.epochs == 2
    assert sorted(study.trials[0].intermediate_values) == [0, 1]


@pytest.mark.e2e
def test_both_optuna_tuners_through_the_cli(tmp_path: Path, subset_dir: Path) -> None:
    for tuner in ("tpe", "tpe-hyperband"):
        code = cli.main(
            [
                "run",
                "--tuner",
                tuner,
                "--max-trials",
                "3",
                "--seed",
                "1",
                "--profile",
                "smoke",
                "--data-dir",
                str(subset_dir),
                "--out",
                str(tmp_path),
            ]
        )
        assert code == 0, tuner
    runs, trials = results.read_runs(tmp_path), results.read_trials(tmp_path)
    assert sorted(runs["tuner"]) == ["tpe", "tpe-hyperband"]
    assert (runs["num_initial_points"] == 1).all() and (runs["stopped_by"] == "trials").all()
    assert runs["optuna_version"].eq(optuna.__version__).all()
    assert len(trials) == 6 and set(trials["status"]) <= {"COMPLETED", "PRUNED"}
    for row in runs.itertuples():
        mine = trials[trials["run_id"] == row.run_id]
        assert mine["epochs"].sum() == row.search_epochs
        assert mine.loc[mine["status"] == "COMPLETED", "val_accuracy"].max() == pytest.approx(row.best_val_accuracy)


# --- proposals -----------------------------------------------------------------------------------------------------


def test_no_trial_starts_when_tpe_proposed_past_the_budget(fake_models, monkeypatch) -> None:
    fake_models()
    clock = KerasTrainer.clock
    propose = optuna_search.suggest

    def slow_third_proposal(trial):
        if trial.number == 2:
            clock.now += 100  # the proposal outlived the 60 s budget
        return propose(trial)

    monkeypatch.setattr(optuna_search, "suggest", slow_third_proposal)
    fields = _search(_spec(max_trials=None, max_seconds=60))
    assert len(fields.trials) == 2 and fields.stopped_by == "time"


def test_tpe_records_which_trials_its_model_proposed(fake_models) -> None:
    fake_models()
    fields = _search(_spec(max_trials=6))  # three startup trials, then TPE's model
    assert [t.proposed_by for t in fields.trials] == ["random"] * 3 + ["model"] * 3
    assert fields.model_trials == 3
