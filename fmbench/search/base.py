"""What every search backend shares: the Searcher contract, the budgeted oracle, the trial recorder, the
progress line, the model-based start, and the summary of a search's trials into a SearchOutcome."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Protocol

import keras_tuner as kt

from fmbench import telemetry
from fmbench.budget import SearchClock
from fmbench.data import Split
from fmbench.models.trainer import Trainer
from fmbench.registry import RUNNERS
from fmbench.spec import CUT, RunSpec, SearchOutcome, TrialRecord

Progress = Callable[[str], None]


class Searcher(Protocol):
    """Searches the spec's space under its budget, training every trial with `trainer`; raises SearchFailed when
    no trial is usable. keras-tuner's oracles, Optuna, scikit-learn's search, the distributed chief and a fixed
    model's one configuration (`fixed`) are searchers."""

    def __call__(
        self,
        spec: RunSpec,
        split: Split,
        trainer: Trainer,
        workdir: str,
        sampler: telemetry.Sampler,
        progress: Progress,
    ) -> SearchOutcome: ...


class SearchFailed(RuntimeError):
    """A search that produced no usable trial; carries what it did record (`partial`, with what stopped it) so
    the row keeps it."""

    def __init__(self, message: str, partial: SearchOutcome):
        super().__init__(message)
        self.partial = partial


def fixed(
    spec: RunSpec, split: Split, trainer: Trainer, workdir: str, sampler: telemetry.Sampler, progress: Progress
) -> SearchOutcome:
    """The searcher of a fixed model (a baseline): it proposes the trainer's one configuration and scores nothing."""
    return SearchOutcome(best_hyperparameters=dict(trainer.baseline), stopped_by="trials")


def last_line(text: str | None) -> str:
    """The last non-blank line of an error message: the one that says what went wrong."""
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def initial_points(spec: RunSpec) -> int:
    """Random trials before a model-based tuner's model acts: half the full-length trials the budget allows
    (trials, or epoch budget / epochs per trial), at least 1, so the model picks at least half of them.

    keras-tuner's default (3 x the number of hyperparameters, 36 here) would make any affordable budget
    a random search. A time budget alone allows an unknown number of trials: 3 random ones.
    """
    budget = spec.budget
    allowed = [n for n in (budget.max_trials, budget.max_epochs and budget.max_epochs // spec.epochs) if n is not None]
    return max(1, min(allowed) // 2) if allowed else 3


def recorded_initial_points(spec: RunSpec) -> int | None:
    """What a row records as its model-based start: initial_points for model-based tuners, None for the others."""
    return initial_points(spec) if RUNNERS[spec.tuner].model_based else None


class BudgetedOracle:
    """keras-tuner oracle mixin: no trial starts once the SearchClock says the budget is spent, and each
    proposal records who made it (`proposed_by`: trial id -> "model" or "random"; "" for other oracles)."""

    clock: SearchClock

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.proposed_by: dict[str, str] = {}

    def populate_space(self, trial_id):
        stopped = {"status": kt.engine.trial.TrialStatus.STOPPED, "values": None}
        if self.clock.should_stop(len(self.trials)):
            return stopped
        proposer = self._proposer()
        response = super().populate_space(trial_id)
        # A proposal can take seconds (the Gaussian process's fit): a budget spent meanwhile starts no trial.
        if self.clock.should_stop(len(self.trials)):
            return stopped
        self.proposed_by[trial_id] = proposer
        return response

    def _proposer(self) -> str:
        """Who proposes the next trial. keras-tuner's Bayesian oracle draws at random until num_initial_points
        trials completed, then its Gaussian process proposes; oracles without a model propose ""."""
        if not hasattr(self, "num_initial_points"):
            return ""
        completed = sum(trial.status == "COMPLETED" for trial in self.trials.values())
        return "model" if completed >= self.num_initial_points else "random"


def trial_line(label: str, record: TrialRecord, search_seconds: float, score_name: str = "val_acc") -> str:
    """The progress line of one finished trial, the same for every backend."""
    if record.val_accuracy is not None:
        score = f"{score_name}={record.val_accuracy:.4f}"
    else:
        score = f"error: {record.error}" if record.error else "(budget spent)"
    rung = f" bracket {record.bracket} round {record.round}" if record.bracket is not None else ""
    worker = f" {record.worker}" if record.worker else ""
    return (
        f"[{label}]{worker} trial {record.trial_id}{rung} {record.status} {score} epochs={record.epochs} "
        f"{record.seconds:.1f}s (search {search_seconds:.1f}s)"
    )


class RecordingTuner:
    """keras-tuner Tuner mixin: times and records each trial (keras-tuner keeps no times or epochs) and prints
    its progress line. A backend's tuner sets `_trial_epochs` and `_trial_cut` while it runs a trial."""

    score_name = "val_acc"

    def start_recording(
        self,
        sampler: telemetry.Sampler,
        search_started: float,
        label: str,
        progress: Progress,
        active_values: Callable[[dict], dict] = dict,
    ) -> None:
        """Begin recording; `active_values` maps a trial's values to those its model used."""
        self.records: list[TrialRecord] = []
        self._active_values = active_values
        self._sampler, self._search_started, self._label, self._progress = sampler, search_started, label, progress

    def on_trial_begin(self, trial):
        self._trial_started = self._sampler.sample().time  # a reading at each boundary: short trials get figures too
        self._trial_epochs, self._trial_cut = 0, False
        super().on_trial_begin(trial)

    def on_trial_end(self, trial):
        ended = self._sampler.sample().time
        try:
            super().on_trial_end(trial)  # may raise once too many trials in a row have failed
        finally:
            status = CUT if self._trial_cut else str(trial.status)
            values = trial.hyperparameters.values
            record = TrialRecord(
                trial_id=trial.trial_id,
                hyperparameters=self._active_values(values),
                status=status,
                val_accuracy=float(trial.score) if status == "COMPLETED" else None,
                epochs=self._trial_epochs,
                started_seconds=self._trial_started - self._search_started,
                seconds=ended - self._trial_started,
                error=last_line(trial.message) if status not in ("COMPLETED", CUT) else "",
                telemetry=self._sampler.summary(self._trial_started, ended),
                bracket=values.get("tuner/bracket"),
                round=values.get("tuner/round"),
                initial_epoch=values.get("tuner/initial_epoch"),
                parent_trial_id=values.get("tuner/trial_id"),
                proposed_by=getattr(self.oracle, "proposed_by", {}).get(trial.trial_id, ""),
            )
            self.records.append(record)
            self._progress(trial_line(self._label, record, ended - self._search_started, self.score_name))


def summarize_search(
    spec: RunSpec, clock: SearchClock, records: tuple[TrialRecord, ...], error: str = ""
) -> SearchOutcome:
    """The outcome of a search from its trial records; raises SearchFailed when none is usable."""
    search_seconds = clock.elapsed()
    completed = [r for r in records if r.status == "COMPLETED"]
    spent = clock.stop_reason is not None and all(r.status == CUT for r in records)
    if not error and not completed and spent:
        unit = {"time": "--max-seconds", "epochs": "--max-epochs", "trials": "--max-trials"}[clock.stop_reason]
        error = (
            f"the {spec.budget.label} budget ended before any trial finished its {spec.epochs} epochs "
            f"({len(records)} cut): raise {unit}"
        )
    elif not error and not completed:
        error = f"search ran {len(records)} trial(s) and none completed"
    outcome = SearchOutcome(
        best_hyperparameters={},
        trials=records,
        trials_completed=len(completed),
        # pruned and cut trials did not fail
        trials_failed=sum(r.status not in ("COMPLETED", "PRUNED", CUT) for r in records),
        trials_cut=sum(r.status == CUT for r in records),
        brackets_completed=_brackets_completed(spec, completed),
        search_epochs=sum(r.epochs for r in records),
        search_seconds=search_seconds,
        # A failed search stopped by error, unless it was the budget that left no trial finished.
        stopped_by="error" if error and not spent else clock.stop_reason or "exhausted",
        time_overrun_seconds=None
        if spec.budget.max_seconds is None
        else max(0.0, search_seconds - spec.budget.max_seconds),
        model_trials=sum(r.proposed_by == "model" for r in judged(records))
        if RUNNERS[spec.tuner].model_based
        else None,
    )
    if error:
        raise SearchFailed(error, outcome)
    best = max(completed, key=lambda r: r.val_accuracy)
    return dataclasses.replace(outcome, best_hyperparameters=best.hyperparameters, best_val_accuracy=best.val_accuracy)


def judged(records) -> list:
    """The trials that ran to a score a tuner learns from: completed ones, and those a pruner stopped."""
    return [r for r in records if r.status in ("COMPLETED", "PRUNED")]


def _brackets_completed(spec: RunSpec, completed: list[TrialRecord]) -> int | None:
    """Hyperband brackets with promotions (bracket >= 1) whose final round completed: 0 means no bracket ran its
    promotions to the end.

    keras-tuner's final round can hold several trials (2 in both promoting brackets of max_epochs=10, factor 3),
    so counting final-round trials overstates brackets: a bracket number's completed final-round trials are
    divided by that round's size. The integer division also counts a bracket number that recurs in a later
    Hyperband iteration once per complete pass, and never counts a final round that a budget cut short.
    """
    if spec.tuner != "hyperband":
        return None
    # keras_tuner HyperbandOracle._get_size(bracket, round=bracket), with its floating-point arithmetic, so an
    # inexact log(max_epochs, factor) sizes the round exactly as the oracle that ran the search did.
    end_size = math.ceil(1 + math.log(spec.epochs, spec.hyperband_factor))
    finals: dict[int, int] = {}
    for r in completed:
        if r.bracket is not None and r.bracket >= 1 and r.round == r.bracket:
            finals[r.bracket] = finals.get(r.bracket, 0) + 1
    return sum(count // math.ceil(end_size / (bracket + 1)) for bracket, count in finals.items())
