"""The keras-tuner backend: its four oracles under fmbench's budget, and a tuner that runs and records each trial.

Random search, Hyperband, Bayesian optimisation and grid search are keras-tuner's own oracles with the
budget mixin of search.base; each trial's fit runs here (fmbench.models.training), so the budget callback
can stop it and the trial is scored once after its last epoch, as every backend scores it.
"""

from __future__ import annotations

import warnings

import keras
import keras_tuner as kt

from fmbench import models, telemetry
from fmbench.budget import BudgetCallback, SearchClock
from fmbench.data import Split
from fmbench.models.trainer import ResumableTrainer
from fmbench.search.base import BudgetedOracle, Progress, RecordingTuner, initial_points, last_line, summarize_search
from fmbench.spec import RunSpec, SearchOutcome

OBJECTIVE = kt.Objective("val_accuracy", direction="max")


class RandomOracle(BudgetedOracle, kt.oracles.RandomSearchOracle):
    pass


class HyperbandOracle(BudgetedOracle, kt.oracles.HyperbandOracle):
    pass


class BayesianOracle(BudgetedOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class GridOracle(BudgetedOracle, kt.oracles.GridSearchOracle):
    pass


class _KerasTrials(RecordingTuner):
    """Tuner mixin: runs each trial through the trainer (fmbench.models.trainer), so the budget can cut it and it is
    scored once.

    One definition of a training run's validation score, shared with the baseline: the validation
    accuracy after its last epoch (keras-tuner's default is the best epoch, which the retrain, training
    for the full epochs, never reproduces). Validation runs only after that last epoch.
    """

    saves_checkpoints = False  # only Hyperband continues a trial from its parent's weights (a promotion)

    def __init__(self, *args, trainer: ResumableTrainer, **kwargs):
        super().__init__(*args, **kwargs)
        self.trainer = trainer

    def run_trial(self, trial, x, y, validation_data, epochs, initial_epoch=0, callbacks=(), **fit_kwargs):
        values = trial.hyperparameters.values
        epochs = values.get("tuner/epochs", epochs)  # Hyperband's rung
        initial_epoch = values.get("tuner/initial_epoch", initial_epoch)
        parent = values.get("tuner/trial_id")  # a promotion continues its parent's weights
        clock = getattr(self.oracle, "clock", None)
        budget = [BudgetCallback(clock)] if clock is not None else []
        self.trainer.reset()
        trained = self.trainer.train(
            values,
            x,
            y,
            epochs=epochs,
            initial_epoch=initial_epoch,
            batch_size=fit_kwargs["batch_size"],
            resume_from=self._get_checkpoint_fname(parent) if parent and self.saves_checkpoints else None,
            callbacks=self._deepcopy_callbacks(list(callbacks)) + budget,
        )
        self._trial_epochs = budget[0].epochs if budget else trained.epochs
        if budget and budget[0].cut:
            # No score at a fidelity it did not reach: keras-tuner marks a NaN score INVALID (not retried,
            # and the budget lets no further trial start); our record says CUT.
            self._trial_cut = True
            return {"val_accuracy": float("nan")}
        if self.saves_checkpoints:
            self.trainer.save(trained, self._get_checkpoint_fname(trial.trial_id))
        return {"val_accuracy": self.trainer.score(trained, *validation_data)[0]}


class _Tuner(_KerasTrials, kt.Tuner):
    """RandomSearch and BayesianOptimization are a plain Tuner around their oracle."""


class _HyperbandTuner(_KerasTrials, kt.Tuner):
    """Hyperband's oracle in a plain Tuner: the trainer continues a promoted trial from its parent's checkpoint, as
    kt.Hyperband's own model builder does."""

    saves_checkpoints = True


def _random(spec: RunSpec):
    return _Tuner, RandomOracle(objective=OBJECTIVE, max_trials=None, seed=spec.search_seed)


def _hyperband(spec: RunSpec):
    # hyperband_iterations=None means brackets without end: our budget, not the bracket count, stops it
    # (one iteration of max_epochs=10, factor=3 is 30 trials, so a 30-trial budget is the classic setting).
    oracle = HyperbandOracle(
        objective=OBJECTIVE,
        max_epochs=spec.epochs,
        factor=spec.hyperband_factor,
        hyperband_iterations=None,
        seed=spec.search_seed,
    )
    return _HyperbandTuner, oracle


def _bayesian(spec: RunSpec):
    oracle = BayesianOracle(
        objective=OBJECTIVE, max_trials=None, num_initial_points=initial_points(spec), seed=spec.search_seed
    )
    return _Tuner, oracle


def _grid(spec: RunSpec):
    # keras-tuner walks the grid like an odometer from the defaults (1 layer, 32 units, no dropout, lr 1e-4):
    # the last-declared knob turns fastest, so a budget sees the learning rate's 10 log-spaced values first.
    return _Tuner, GridOracle(objective=OBJECTIVE, max_trials=None, seed=spec.search_seed)


ORACLES = {"random": _random, "hyperband": _hyperband, "bayesian": _bayesian, "grid": _grid}


def make(spec: RunSpec):
    """(tuner class, budgeted oracle) of a keras-tuner spec; the oracle's clock is the caller's to set, the tuner's
    trainer the caller's to pass (`trainer=`)."""
    return ORACLES[spec.tuner](spec)


def search(
    spec: RunSpec, split: Split, trainer: ResumableTrainer, workdir: str, sampler: telemetry.Sampler, progress: Progress
) -> SearchOutcome:
    """search.base.Searcher for keras-tuner's tuners: trials until the budget is spent, then their outcome."""
    tuner_class, oracle = make(spec)
    clock = SearchClock(spec.budget, clock=trainer.clock)  # a replay's budget is spent in its table's seconds
    oracle.clock = clock
    # A fresh directory with overwrite=True: a reused project silently reloads a finished search.
    space = models.space_of(spec)
    tuner = tuner_class(
        oracle=oracle,
        hypermodel=trainer.hypermodel,
        trainer=trainer,
        directory=workdir,
        project_name="search",
        overwrite=True,
    )
    # Setting the tuner up built a model per layer count to declare the space (a replay only declares it); trials
    # start from the run's seed as they would without those builds.
    keras.utils.set_random_seed(spec.weight_seed)
    tuner.start_recording(sampler, clock.started, spec.cell, progress, space.active_values)
    progress(f"[{spec.cell}] search: {spec.tuner}, budget {spec.budget.label}, {spec.epochs} epochs per trial")
    error = ""
    try:
        with warnings.catch_warnings():
            # keras-tuner takes the max over a cut trial's NaN score; that trial is recorded as CUT anyway.
            warnings.filterwarnings("ignore", "All-NaN", RuntimeWarning)
            search_split(tuner, spec, split)
    except RuntimeError as exc:  # keras-tuner gives up after consecutive failed trials
        error = f"search stopped: {last_line(str(exc))}"
    return summarize_search(spec, clock, tuple(tuner.records), error)


def search_split(tuner, spec: RunSpec, split: Split, callbacks=()) -> None:
    """Run a tuner's search on the split's training images, validated on its validation images (also a distributed
    worker's loop)."""
    tuner.search(
        split.x_train,
        split.y_train,
        validation_data=(split.x_val, split.y_val),
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        callbacks=list(callbacks),
        verbose=0,
    )
