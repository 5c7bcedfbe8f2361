"""Optuna's TPE over the same search space as keras-tuner's tuners, optionally with its Hyperband pruner.

`tpe` is Optuna's TPESampler alone, with its default independent model per knob; `tpe-multivariate` models
the knobs jointly, each group of knobs that appear together (a layer count's layers) on its own
(`multivariate=True, group=True`, Optuna's documented setting for conditional spaces); `tpe-hyperband` adds
Optuna's HyperbandPruner, which stops a trial between epochs through optuna-integration's KerasPruningCallback.
All run the search loop here with
Optuna's ask/tell interface, so the budget is checked before every trial exactly as keras-tuner's oracles
check it, and the same BudgetCallback stops a running fit. The study lives in memory and is created per
run: nothing carries over between runs. Models come from models.mlp.make_model, so a trial of this search
and a trial of keras-tuner's with the same values train the same model.
"""

from __future__ import annotations

import warnings

import keras
import optuna
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback

from fmbench import space, telemetry
from fmbench.budget import BudgetCallback, SearchClock
from fmbench.data import Split
from fmbench.models import mlp
from fmbench.models.trainer import Trainer
from fmbench.search.base import Progress, initial_points, last_line, summarize_search, trial_line
from fmbench.spec import CUT, RunSpec, SearchOutcome, TrialRecord

# As keras-tuner's Tuner: a search that fails this many trials in a row has a bug, not bad luck.
MAX_CONSECUTIVE_FAILURES = 3


def suggest(trial: optuna.Trial) -> dict:
    """The MLP space of fmbench.space, asked of Optuna (define-by-run: a layer's knobs only when it exists)."""
    return space.suggest_optuna(space.MLP, trial)


def make_study(spec: RunSpec) -> optuna.Study:
    """A fresh in-memory study: TPE seeded with the run's search seed; Hyperband pruning for `tpe-hyperband`."""
    # TPE's random start is BayesianOptimization's: its model then proposes at least half of the trials.
    joint = spec.tuner == "tpe-multivariate"
    with warnings.catch_warnings():  # Optuna marks multivariate and group experimental; the rows name the version
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            n_startup_trials=initial_points(spec), seed=spec.search_seed, multivariate=joint, group=joint
        )
    if spec.tuner == "tpe-hyperband":
        # Resources are epochs, as for keras-tuner's Hyperband. The Keras callback reports epoch indices
        # (0-based), so the first rung is judged after the second epoch.
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=spec.epochs, reduction_factor=spec.hyperband_factor
        )
    else:
        pruner = optuna.pruners.NopPruner()
    # A fixed name: the pruner assigns trials to brackets by hashing it with the trial number.
    return optuna.create_study(study_name="fmbench", direction="maximize", sampler=sampler, pruner=pruner)


class _LastScore(keras.callbacks.Callback):
    """The validation accuracy of the latest validated epoch: what the pruner judged a pruned trial on."""

    value: float | None = None

    def on_epoch_end(self, epoch, logs=None):
        if "val_accuracy" in (logs or {}):
            self.value = float(logs["val_accuracy"])


def search(
    spec: RunSpec, split: Split, trainer: Trainer, workdir: str, sampler: telemetry.Sampler, progress: Progress
) -> SearchOutcome:
    """search.base.Searcher for Optuna's tuners: trials until the budget is spent, then their outcome."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our progress lines, not Optuna's
    study = make_study(spec)
    clock = SearchClock(spec.budget, clock=trainer.clock)  # a replay's budget is spent in its table's seconds
    records: list[TrialRecord] = []
    error, failures_in_a_row = "", 0
    progress(
        f"[{spec.cell}] search: {spec.tuner} (Optuna {optuna.__version__}, {initial_points(spec)} startup trials), "
        f"budget {spec.budget.label}, {spec.epochs} epochs per trial"
    )
    while not clock.should_stop(len(records)):
        proposer = "model" if _finished(study) >= initial_points(spec) else "random"  # as TPESampler decides
        trial = study.ask()
        values = suggest(trial)  # TPE samples here: this is the proposal
        if clock.should_stop(len(records)):
            break  # the budget ran out while TPE proposed: the trial never starts
        record = _run_trial(spec, split, trainer, study, trial, values, proposer, clock, sampler)
        records.append(record)
        progress(trial_line(spec.cell, record, clock.elapsed()))
        failures_in_a_row = failures_in_a_row + 1 if record.status == "FAILED" else 0
        if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            error = f"search stopped: {failures_in_a_row} trials in a row failed; last: {record.error}"
            break
    return summarize_search(spec, clock, tuple(records), error)


def _finished(study: optuna.Study) -> int:
    """Trials TPESampler counts against its random start: the complete and the pruned ones."""
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _run_trial(
    spec: RunSpec,
    split: Split,
    trainer: Trainer,
    study: optuna.Study,
    trial: optuna.Trial,
    values: dict,
    proposer: str,
    clock: SearchClock,
    sampler: telemetry.Sampler,
) -> TrialRecord:
    """Train one proposal, tell Optuna how it went, and record it as keras-tuner trials are recorded."""
    started = sampler.sample().time
    last_validated, budget_callback = _LastScore(), BudgetCallback(clock)
    callbacks = [last_validated, budget_callback]  # both must see an epoch before the pruner stops the fit at its end
    # As keras-tuner's tuners here, a trial is scored once after its last epoch (fmbench.models.scoring); the pruner
    # judges every epoch, on Keras's own validation.
    validation, metrics = None, ()
    if spec.tuner == "tpe-hyperband":
        callbacks.append(KerasPruningCallback(trial, "val_accuracy"))
        validation, metrics = (split.x_val, split.y_val), ("accuracy",)
    status, error, score = "COMPLETED", "", None
    try:
        trainer.reset()
        trained = trainer.train(
            values,
            split.x_train,
            split.y_train,
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            callbacks=callbacks,
            validation_data=validation,
            metrics=metrics,
        )
        if budget_callback.cut:
            status = CUT  # no score at a fidelity it did not reach, as for keras-tuner's trials
        else:
            score = trainer.score(trained, split.x_val, split.y_val)[0]
    except optuna.TrialPruned:
        status, score = "PRUNED", last_validated.value  # the score it was judged on; as in Optuna, never the best
    except Exception as exc:  # the trial's row records it; the search goes on
        status, error = "FAILED", f"{type(exc).__name__}: {last_line(str(exc))}"
    if status == "COMPLETED":
        study.tell(trial, score)
    else:
        study.tell(trial, state=TrialState.PRUNED if status == "PRUNED" else TrialState.FAIL)
    ended = sampler.sample().time
    return TrialRecord(
        trial_id=f"{trial.number:04d}",  # as keras-tuner numbers its trials
        hyperparameters=mlp.active_values(values),
        status=status,
        val_accuracy=score,
        epochs=budget_callback.epochs,  # full epochs: a cut epoch is not training done
        started_seconds=started - clock.started,
        seconds=ended - started,
        error=error,
        telemetry=sampler.summary(started, ended),
        proposed_by=proposer,
    )
