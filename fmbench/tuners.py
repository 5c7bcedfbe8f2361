"""Tuner registry and the run protocol: search under a budget, retrain the best, evaluate on test once."""
from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
import time
import uuid
import warnings
from typing import Callable

import keras
import keras_tuner as kt

from fmbench import hypermodel, scoring, telemetry, tf_session, training
from keras_tuner.src import utils

from fmbench.budget import BudgetCallback, SearchClock
from fmbench.data import Split
from fmbench.spec import BASELINE, CUT, DataSizes, RunResult, RunSpec, TrialRecord

OBJECTIVE = kt.Objective("val_accuracy", direction="max")

Progress = Callable[[str], None]
# (spec, split, workdir, sampler, progress) -> the search's fields of a RunResult, as _search returns them
SearchFn = Callable[[RunSpec, Split, str, "telemetry.Sampler", Progress], dict]


class _BudgetedOracle:
    """Oracle mixin: no trial starts once the SearchClock says the budget is spent."""

    clock: SearchClock

    def populate_space(self, trial_id):
        if self.clock.should_stop(len(self.trials)):
            return {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        return super().populate_space(trial_id)


class RandomOracle(_BudgetedOracle, kt.oracles.RandomSearchOracle):
    pass


class HyperbandOracle(_BudgetedOracle, kt.oracles.HyperbandOracle):
    pass


class BayesianOracle(_BudgetedOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class GridOracle(_BudgetedOracle, kt.oracles.GridSearchOracle):
    pass


class _RecordingTuner:
    """Tuner mixin: runs each trial's fit itself and records it (keras-tuner keeps no times or epochs).

    One definition of a training run's validation score, shared with the baseline: the validation
    accuracy after its last epoch (keras-tuner's default is the best epoch, which the retrain, training
    for the full epochs, never reproduces). Validation runs only after that last epoch.
    """

    saves_checkpoints = False  # only Hyperband reloads a trial's weights (to promote it)

    def start_recording(self, sampler: telemetry.Sampler, search_started: float, label: str, progress: Progress,
                        space=hypermodel) -> None:
        self.records: list[TrialRecord] = []
        self._space = space
        self._sampler, self._search_started, self._label, self._progress = sampler, search_started, label, progress

    def on_trial_begin(self, trial):
        self._trial_started = self._sampler.sample().time  # a reading at each boundary: short trials get figures too
        self._trial_epochs, self._trial_cut = 0, False
        super().on_trial_begin(trial)

    def run_trial(self, trial, x, y, validation_data, epochs, initial_epoch=0, callbacks=(), **fit_kwargs):
        values = trial.hyperparameters.values
        epochs = values.get("tuner/epochs", epochs)  # Hyperband's rung
        initial_epoch = values.get("tuner/initial_epoch", initial_epoch)
        # keras-tuner's run_trial also calls gc.collect() here; as tf_session says, Python frees the same later.
        tf_session.clear_session()
        model = self._build_hypermodel(trial.hyperparameters)  # Hyperband loads the parent's weights here
        clock = getattr(self.oracle, "clock", None)
        budget = [BudgetCallback(clock)] if clock is not None else []
        # No validation inside the fit: the trial is scored once, after its last epoch (fmbench.scoring).
        history = training.fit(
            model, x, y, epochs=epochs, initial_epoch=initial_epoch,
            callbacks=self._deepcopy_callbacks(list(callbacks)) + budget, **fit_kwargs,
        )
        self._trial_epochs = budget[0].epochs if budget else len(history.epoch)
        if budget and budget[0].cut:
            # No score at a fidelity it did not reach: keras-tuner marks a NaN score INVALID (not retried,
            # and the budget lets no further trial start); our record says CUT.
            self._trial_cut = True
            return {"val_accuracy": float("nan")}
        if self.saves_checkpoints:
            utils.save_json(self._get_build_config_fname(trial.trial_id), model.get_build_config())
            model.save_weights(self._get_checkpoint_fname(trial.trial_id))
        return {"val_accuracy": scoring.score(model, *validation_data)[0]}

    def on_trial_end(self, trial):
        ended = self._sampler.sample().time
        try:
            super().on_trial_end(trial)  # may raise once too many trials in a row have failed
        finally:
            status = CUT if self._trial_cut else str(trial.status)
            score = float(trial.score) if status == "COMPLETED" else None
            values = trial.hyperparameters.values
            record = TrialRecord(
                trial_id=trial.trial_id,
                hyperparameters=self._space.active_values(values),
                status=status,
                val_accuracy=score,
                epochs=self._trial_epochs,
                started_seconds=self._trial_started - self._search_started,
                seconds=ended - self._trial_started,
                error=_last_line(trial.message) if status not in ("COMPLETED", CUT) else "",
                telemetry=self._sampler.summary(self._trial_started, ended),
                bracket=values.get("tuner/bracket"),
                round=values.get("tuner/round"),
                initial_epoch=values.get("tuner/initial_epoch"),
                parent_trial_id=values.get("tuner/trial_id"),
            )
            self.records.append(record)
            score_text = f"val_acc={score:.4f}" if score is not None else f"error: {record.error}" if record.error else "(budget spent)"
            rung = f" bracket {record.bracket} round {record.round}" if record.bracket is not None else ""
            self._progress(
                f"[{self._label}] trial {trial.trial_id}{rung} {record.status} {score_text} "
                f"epochs={record.epochs} {record.seconds:.1f}s (search {ended - self._search_started:.1f}s)"
            )


class _Tuner(_RecordingTuner, kt.Tuner):
    """RandomSearch and BayesianOptimization are a plain Tuner around their oracle."""


class _HyperbandTuner(_RecordingTuner, kt.Hyperband):
    """kt.Hyperband for its checkpoint reloads on promotion, with our oracle."""

    saves_checkpoints = True

    def __init__(self, oracle, **kwargs):
        # Skip kt.Hyperband.__init__, whose only job is to build a budget-less oracle.
        kt.Tuner.__init__(self, oracle=oracle, **kwargs)

    def _build_hypermodel(self, hp):
        # A promotion loads its parent's weights into a model whose optimizer is not built yet, so Keras skips
        # the parent's Adam state, as keras-tuner's promotions always have (fmbench.training), and warns about
        # it at every promotion; the warning says nothing wrong, so it is not shown.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return super()._build_hypermodel(hp)


# Tuners whose model starts after bayesian_initial_points random trials (Optuna's TPE and SklearnTuner's
# Bayesian oracle too); the row records the number.
MODEL_BASED = ("bayesian", "tpe", "tpe-hyperband", "sklearn")


def bayesian_initial_points(spec: RunSpec) -> int:
    """Random trials before the Gaussian process acts: half the full-length trials the budget allows
    (trials, or epoch budget / epochs per trial), at least 1, so the model picks at least half of them.

    keras-tuner's default (3 x the number of hyperparameters, 36 here) would make any affordable budget
    a random search. A time budget alone allows an unknown number of trials: 3 random ones.
    """
    budget = spec.budget
    allowed = [n for n in (budget.max_trials, budget.max_epochs and budget.max_epochs // spec.epochs) if n is not None]
    return max(1, min(allowed) // 2) if allowed else 3


def _random(spec: RunSpec):
    return _Tuner, RandomOracle(objective=OBJECTIVE, max_trials=None, seed=spec.seed)


def _hyperband(spec: RunSpec):
    # hyperband_iterations=None means brackets without end: our budget, not the bracket count, stops it
    # (one iteration of max_epochs=10, factor=3 is 30 trials, so a 30-trial budget is the classic setting).
    oracle = HyperbandOracle(
        objective=OBJECTIVE, max_epochs=spec.epochs, factor=spec.hyperband_factor, hyperband_iterations=None, seed=spec.seed
    )
    return _HyperbandTuner, oracle


def _bayesian(spec: RunSpec):
    oracle = BayesianOracle(objective=OBJECTIVE, max_trials=None, num_initial_points=bayesian_initial_points(spec), seed=spec.seed)
    return _Tuner, oracle


def _grid(spec: RunSpec):
    # keras-tuner walks the grid like an odometer from the defaults (1 layer, 32 units, no dropout, lr 1e-4):
    # the last-declared knob turns fastest, so a budget sees the learning rate's 10 log-spaced values first.
    return _Tuner, GridOracle(objective=OBJECTIVE, max_trials=None, seed=spec.seed)


TUNERS = {"random": _random, "hyperband": _hyperband, "bayesian": _bayesian, "grid": _grid}


def run(spec: RunSpec, split: Split, progress: Progress = print, search: SearchFn | None = None) -> RunResult:
    """One run of the protocol. Any failure becomes a row with its error, never an exception.

    `search` replaces the in-process search (fmbench.distributed's chief passes its own);
    the retrain and the single test evaluation stay the same.
    """
    telemetry.enable_gpu_memory_growth()
    search_fn, retrain_fn = _protocol_for(spec.tuner)
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    fields = dict(
        best_hyperparameters={}, best_val_accuracy=None, test_accuracy=None, test_loss=None,
        search_seconds=0.0, retrain_seconds=0.0, evaluate_seconds=0.0, trials_completed=0, trials_failed=0,
        search_epochs=0, retrain_epochs=0, stopped_by="exhausted", time_overrun_seconds=None, trials=(), error="",
        trials_cut=0, brackets_completed=None,
    )
    # keras-tuner writes trial JSON every trial (and Hyperband a checkpoint): keep them in memory where we can.
    workdir = tempfile.mkdtemp(prefix=f"fmbench-{spec.cell}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    with telemetry.Sampler() as sampler:
        try:
            keras.utils.set_random_seed(spec.seed)
            if spec.tuner == BASELINE:
                fields["best_hyperparameters"] = dict(space_of(spec).BASELINE_HPS)
                fields["stopped_by"] = "trials"  # the baseline is a single fixed trial
            else:
                fields.update((search or search_fn)(spec, split, workdir, sampler, progress))
            retrain_fn(spec, split, fields, progress)
        except _SearchFailed as exc:
            fields.update(exc.partial, stopped_by="error", error=str(exc))
            progress(f"[{spec.cell}] ERROR {exc}")
        except Exception as exc:  # the row records it; the suite goes on
            fields.update(stopped_by="error", error=f"{type(exc).__name__}: {_last_line(str(exc))}")
            progress(f"[{spec.cell}] ERROR {fields['error']}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            tf_session.clear_session()
    # The row records the images the run used: data.load caps sizes at what the data holds.
    used = DataSizes(train=len(split.y_train), val=len(split.y_val), test=len(split.y_test))
    return RunResult(
        spec=dataclasses.replace(spec, sizes=used),
        run_id=f"{spec.cell}-{uuid.uuid4().hex[:8]}",
        started_at=started_at,
        num_initial_points=bayesian_initial_points(spec) if spec.tuner in MODEL_BASED else None,
        telemetry=sampler.summary(),
        **fields,
    )


def space_of(spec: RunSpec):
    """The module of the spec's search space: build_model, make_model, BASELINE_HPS, active_values."""
    if spec.space == "cnn":
        from fmbench import cnn

        return cnn
    return hypermodel


def _protocol_for(tuner: str) -> tuple[SearchFn, Callable]:
    """(search, retrain-and-test) of a tuner: keras-tuner's search here; Optuna's and scikit-learn's rows have
    their own modules, imported only when used."""
    if tuner in ("tpe", "tpe-hyperband"):
        from fmbench import optuna_search

        return optuna_search.search, _retrain_and_evaluate
    if tuner in ("sklearn", "sklearn-baseline"):
        from fmbench import sklearn_search

        return sklearn_search.search, sklearn_search.retrain_and_evaluate
    return _search, _retrain_and_evaluate


def _search(spec: RunSpec, split: Split, workdir: str, sampler: telemetry.Sampler, progress: Progress) -> dict:
    tuner_class, oracle = TUNERS[spec.tuner](spec)
    clock = SearchClock(spec.budget)
    oracle.clock = clock
    # A fresh directory with overwrite=True: a reused project silently reloads a finished search.
    space = space_of(spec)
    tuner = tuner_class(oracle=oracle, hypermodel=space.build_model, directory=workdir, project_name="search", overwrite=True)
    tuner.start_recording(sampler, clock.started, spec.cell, progress, space)
    progress(f"[{spec.cell}] search: {spec.tuner}, budget {spec.budget.label}, {spec.epochs} epochs per trial")
    error = ""
    try:
        with warnings.catch_warnings():
            # keras-tuner takes the max over a cut trial's NaN score; that trial is recorded as CUT anyway.
            warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
            tuner.search(
                split.x_train, split.y_train, validation_data=(split.x_val, split.y_val),
                epochs=spec.epochs, batch_size=spec.batch_size, verbose=0,
            )
    except RuntimeError as exc:  # keras-tuner gives up after consecutive failed trials
        error = f"search stopped: {_last_line(str(exc))}"
    return summarize_search(spec, clock, tuple(tuner.records), error)


def summarize_search(spec: RunSpec, clock: SearchClock, records: tuple[TrialRecord, ...], error: str = "") -> dict:
    """The search's fields of a RunResult from its trial records; raises _SearchFailed when none is usable."""
    search_seconds = clock.elapsed()
    completed = [r for r in records if r.status == "COMPLETED"]
    cut = sum(r.status == CUT for r in records)
    if not error and not completed:
        error = f"search ran {len(records)} trial(s) and none completed"
    result = dict(
        trials=records,
        trials_completed=len(completed),
        trials_failed=sum(r.status not in ("COMPLETED", "PRUNED", CUT) for r in records),  # pruned and cut trials did not fail
        trials_cut=cut,
        brackets_completed=_brackets_completed(spec, completed),
        search_epochs=sum(r.epochs for r in records),
        search_seconds=search_seconds,
        stopped_by=clock.stop_reason or "exhausted",
        time_overrun_seconds=None if spec.budget.max_seconds is None else max(0.0, search_seconds - spec.budget.max_seconds),
    )
    if error:
        raise _SearchFailed(error, result)
    best = max(completed, key=lambda r: r.val_accuracy)
    result.update(best_hyperparameters=best.hyperparameters, best_val_accuracy=best.val_accuracy)
    return result


def _brackets_completed(spec: RunSpec, completed: list[TrialRecord]) -> int | None:
    """Hyperband brackets whose last round (round == bracket) completed: a row without one never promoted."""
    if spec.tuner != "hyperband":
        return None
    return sum(r.bracket is not None and r.bracket >= 1 and r.round == r.bracket for r in completed)


class _SearchFailed(RuntimeError):
    """A search that produced no usable trial; carries what it did record so the row keeps it."""

    def __init__(self, message: str, partial: dict):
        super().__init__(message)
        self.partial = partial


def _retrain_and_evaluate(spec: RunSpec, split: Split, fields: dict, progress: Progress) -> None:
    """Same protocol for a tuned model and the baseline: fresh weights, train on train, test once."""
    keras.utils.set_random_seed(spec.seed)
    started = time.monotonic()
    model = space_of(spec).make_model(fields["best_hyperparameters"])
    history = training.fit(model, split.x_train, split.y_train, epochs=spec.epochs, batch_size=spec.batch_size, verbose=0)
    if spec.tuner == BASELINE:
        # The baseline has no search; its validation accuracy (after the last epoch, scored as every trial
        # is) is the target tuners must reach.
        fields["best_val_accuracy"] = scoring.score(model, split.x_val, split.y_val)[0]
    fields["retrain_seconds"] = time.monotonic() - started
    fields["retrain_epochs"] = len(history.epoch)
    started = time.monotonic()
    accuracy, loss = scoring.score(model, split.x_test, split.y_test)
    fields["evaluate_seconds"] = time.monotonic() - started
    fields["test_accuracy"], fields["test_loss"] = float(accuracy), float(loss)
    progress(f"[{spec.cell}] test accuracy {accuracy:.4f} (retrain {fields['retrain_seconds']:.1f}s)")


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
