"""Optuna's TPE over the same search space as keras-tuner's tuners, optionally with its Hyperband pruner.

`tpe` is Optuna's TPESampler alone; `tpe-hyperband` adds Optuna's HyperbandPruner, which stops a trial
between epochs through optuna-integration's KerasPruningCallback. Both run the search loop here with
Optuna's ask/tell interface, so the budget is checked before every trial exactly as keras-tuner's oracles
check it, and the same BudgetCallback stops a running fit. The study lives in memory and is created per
run: nothing carries over between runs. Models come from hypermodel.make_model, so a trial of this search
and a trial of keras-tuner's with the same values train the same model.
"""
from __future__ import annotations

import keras
import optuna
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback

from fmbench import hypermodel, telemetry, tuners
from fmbench.budget import BudgetCallback, SearchClock
from fmbench.data import Split
from fmbench.spec import RunSpec, TrialRecord

# As keras-tuner's Tuner: a search that fails this many trials in a row has a bug, not bad luck.
MAX_CONSECUTIVE_FAILURES = 3


def suggest(trial: optuna.Trial) -> dict:
    """The four knobs of hypermodel.build_model, declared for Optuna: same names, ranges, steps and scales.

    Define-by-run makes the per-layer knobs conditional on the layer count, as they are in keras-tuner.
    """
    values = {"num_layers": trial.suggest_int("num_layers", 1, 5)}
    for i in range(values["num_layers"]):
        values[f"units_{i}"] = trial.suggest_int(f"units_{i}", 32, 512, step=32)
        # Optuna's grid points are low + k * step in floating point; round them to the values keras-tuner shows.
        values[f"dropout_{i}"] = round(trial.suggest_float(f"dropout_{i}", 0.0, 0.5, step=0.1), 10)
    values["learning_rate"] = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    return values


def startup_trials(spec: RunSpec) -> int:
    """Random trials before TPE's model acts: as BayesianOptimization's start, but never over half the trials.

    So the model proposes at least half of a trial budget (2 of 3 in the smoke profile, 4 of 6 in quick).
    """
    initial = tuners.bayesian_initial_points(spec)
    return max(1, min(initial, spec.budget.max_trials // 2)) if spec.budget.max_trials else initial


def make_study(spec: RunSpec) -> optuna.Study:
    """A fresh in-memory study: TPE seeded with the run's seed; Hyperband pruning for `tpe-hyperband`."""
    sampler = optuna.samplers.TPESampler(n_startup_trials=startup_trials(spec), seed=spec.seed)
    if spec.tuner == "tpe-hyperband":
        # Resources are epochs, as for keras-tuner's Hyperband. The Keras callback reports epoch indices
        # (0-based), so the first rung is judged after the second epoch.
        pruner = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.epochs, reduction_factor=spec.hyperband_factor)
    else:
        pruner = optuna.pruners.NopPruner()
    # A fixed name: the pruner assigns trials to brackets by hashing it with the trial number.
    return optuna.create_study(study_name="fmbench", direction="maximize", sampler=sampler, pruner=pruner)


class _EpochScores(keras.callbacks.Callback):
    """Validation accuracy of each epoch that ran to its last batch (an epoch cut by the deadline has none)."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs, self.scores, self._last_step = 0, [], -1

    def on_epoch_begin(self, epoch, logs=None):
        self._last_step = -1

    def on_train_batch_end(self, batch, logs=None):
        self._last_step = batch

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        if self._last_step + 1 >= self.params["steps"] and "val_accuracy" in (logs or {}):
            self.scores.append(float(logs["val_accuracy"]))

    @property
    def last(self) -> float | None:
        return self.scores[-1] if self.scores else None


def search(spec: RunSpec, split: Split, workdir: str, sampler: telemetry.Sampler, progress: tuners.Progress) -> dict:
    """tuners.SearchFn for `tpe` and `tpe-hyperband`: trials until the budget is spent, then the search's fields."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress lines, not Optuna's
    study = make_study(spec)
    clock = SearchClock(spec.budget)
    records: list[TrialRecord] = []
    error, failures_in_a_row = "", 0
    progress(f"[{spec.cell}] search: {spec.tuner} (Optuna {optuna.__version__}, {startup_trials(spec)} startup trials), "
             f"budget {spec.budget.label}, {spec.epochs} epochs per trial")
    while not clock.should_stop(len(records)):
        trial = study.ask()
        record = _run_trial(spec, split, study, trial, clock, sampler)
        records.append(record)
        score = f"val_acc={record.val_accuracy:.4f}" if record.val_accuracy is not None else f"error: {record.error}"
        progress(f"[{spec.cell}] trial {record.trial_id} {record.status} {score} epochs={record.epochs} "
                 f"{record.seconds:.1f}s (search {clock.elapsed():.1f}s)")
        failures_in_a_row = failures_in_a_row + 1 if record.status == "FAILED" else 0
        if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            error = f"search stopped: {failures_in_a_row} trials in a row failed; last: {record.error}"
            break
    return tuners.summarize_search(spec, clock, tuple(records), error)


def _run_trial(spec: RunSpec, split: Split, study: optuna.Study, trial: optuna.Trial, clock: SearchClock,
               sampler: telemetry.Sampler) -> TrialRecord:
    """Train one proposal, tell Optuna how it went, and record it as keras-tuner trials are recorded."""
    started = sampler.sample().time
    scores, budget_callback = _EpochScores(), BudgetCallback(clock)
    callbacks = [scores, budget_callback]  # scores first: they must see an epoch the pruner then stops
    if spec.tuner == "tpe-hyperband":
        callbacks.append(KerasPruningCallback(trial, "val_accuracy"))
    status, error, values = "COMPLETED", "", {}
    try:
        values = suggest(trial)
        keras.backend.clear_session()  # as keras-tuner does before each build
        model = hypermodel.make_model(values)
        model.fit(split.x_train, split.y_train, validation_data=(split.x_val, split.y_val),
                  epochs=spec.epochs, batch_size=spec.batch_size, callbacks=callbacks, verbose=0)
    except optuna.TrialPruned:
        status = "PRUNED"
    except Exception as exc:  # the trial's row records it; the search goes on
        status, error = "FAILED", f"{type(exc).__name__}: {tuners._last_line(str(exc))}"
    if status == "COMPLETED" and budget_callback.cut:
        status = "CUT"  # stopped by the budget before its planned epochs: not comparable, not eligible as best
    if status == "COMPLETED" and scores.last is None:
        status, error = "FAILED", "no epoch reported val_accuracy"
    if status == "COMPLETED":
        study.tell(trial, scores.last)
    else:
        study.tell(trial, state=TrialState.PRUNED if status == "PRUNED" else TrialState.FAIL)
    ended = sampler.sample().time
    return TrialRecord(
        trial_id=f"{trial.number:04d}",  # as keras-tuner numbers its trials
        hyperparameters=hypermodel.active_values(values) if values else {},
        status=status,
        val_accuracy=scores.last,
        epochs=scores.epochs,
        started_seconds=started - clock.started,
        seconds=ended - started,
        error=error,
        telemetry=sampler.summary(started, ended),
    )
