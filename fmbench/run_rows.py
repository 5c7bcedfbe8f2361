"""A finished run as the rows runs.csv and trials.csv store: built from its RunResult, and saved to a results folder."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from fmbench import results
from fmbench.machine import machine_info
from fmbench.registry import BASELINES
from fmbench.schema import RUN_COLUMNS, TRIAL_COLUMNS
from fmbench.spec import RunResult


def run_row(result: RunResult, machine: dict) -> dict:
    """The flat runs.csv row of one run."""
    spec = result.spec
    row = {
        "run_id": result.run_id,
        "started_at": result.started_at,
        "profile": spec.profile,
        "cell": spec.cell,
        "tuner": spec.tuner,
        "budget": spec.budget.label,
        "max_trials": spec.budget.max_trials,
        "max_seconds": spec.budget.max_seconds,
        "max_epochs": spec.budget.max_epochs,
        "seed": spec.seed,
        "train_size": spec.sizes.train,
        "val_size": spec.sizes.val,
        "test_size": spec.sizes.test,
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "hyperband_factor": spec.hyperband_factor if spec.tuner == "hyperband" else None,
        "num_initial_points": result.num_initial_points,
        "best_hyperparameters": json.dumps(result.best_hyperparameters, sort_keys=True),
        "best_val_accuracy": result.best_val_accuracy,
        "test_accuracy": result.test_accuracy,
        "test_loss": result.test_loss,
        "search_seconds": round(result.search_seconds, 3),
        "retrain_seconds": round(result.retrain_seconds, 3),
        "evaluate_seconds": round(result.evaluate_seconds, 3),
        "wall_seconds": round(result.wall_seconds, 3),
        "trials_completed": result.trials_completed,
        "trials_failed": result.trials_failed,
        "search_epochs": result.search_epochs,
        "retrain_epochs": result.retrain_epochs,
        "stopped_by": result.stopped_by,
        "time_overrun_seconds": result.time_overrun_seconds,
        "error": result.error,
        **dataclasses.asdict(result.telemetry),
        **machine,
        "workers": result.workers,
        "trials_cut": result.trials_cut,
        "brackets_completed": result.brackets_completed,
        "space": spec.space,
        "search_seed": spec.search_seed if spec.tuner not in BASELINES else None,
        "init_seed_offset": spec.init_seed_offset,
        "model_trials": result.model_trials,
        "trainer": spec.trainer,
        "replay_table": spec.replay_table,
    }
    return {column: row.get(column) for column in RUN_COLUMNS}


def trial_rows(result: RunResult) -> list[dict]:
    """The flat trials.csv rows of one run, one per trial."""
    spec = result.spec
    rows = []
    for trial in result.trials:
        row = {
            "run_id": result.run_id,
            "profile": spec.profile,
            "cell": spec.cell,
            "tuner": spec.tuner,
            "budget": spec.budget.label,
            "seed": spec.seed,
            "trial_id": trial.trial_id,
            "hyperparameters": json.dumps(trial.hyperparameters, sort_keys=True),
            "status": trial.status,
            "val_accuracy": trial.val_accuracy,
            "epochs": trial.epochs,
            "started_seconds": round(trial.started_seconds, 3),
            "seconds": round(trial.seconds, 3),
            "error": trial.error,
            **dataclasses.asdict(trial.telemetry),
            "worker": trial.worker,
            "bracket": trial.bracket,
            "round": trial.round,
            "initial_epoch": trial.initial_epoch,
            "parent_trial_id": trial.parent_trial_id,
            "proposed_by": trial.proposed_by,
            "trainer": spec.trainer,
        }
        rows.append({column: row.get(column) for column in TRIAL_COLUMNS})
    return rows


def save_run(out_dir: Path, result: RunResult) -> None:
    """Append one run and its trials to out_dir/runs.csv and out_dir/trials.csv, the run row with this machine's info.

    Trials go first: a run row is the marker that a run is complete (resume reads runs.csv).
    """
    results.append_rows(Path(out_dir) / results.TRIALS_FILE, trial_rows(result), TRIAL_COLUMNS)
    results.append_rows(Path(out_dir) / results.RUNS_FILE, [run_row(result, machine_info())], RUN_COLUMNS)
