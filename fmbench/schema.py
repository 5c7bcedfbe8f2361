"""The columns of runs.csv and trials.csv: the one schema every writer and reader of the tables uses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from fmbench.spec import TelemetrySummary

NOT_ADDED = object()  # Column.added of the columns every table has had


@dataclass(frozen=True)
class Column:
    """One column of runs.csv or trials.csv."""

    name: str
    text: bool = False  # read back as a string, never parsed ('0001' stays a trial id, '1234e5678901' a commit)
    integer: bool = False  # a count, size or seed: written and read as a whole number ('1', never '1.0'), or empty
    required: str = (
        ""  # "always"; "ok": in every run that did not end in an error; "completed": in every completed trial
    )
    added: object = NOT_ADDED  # the value a table written before this column existed reads back with


def _columns(names: str, **kind) -> list[Column]:
    return [Column(name, **kind) for name in names.split()]


# The dataclass's annotations (strings under `from __future__ import annotations`) say which fields count things.
TELEMETRY = [Column(f.name, integer=str(f.type).startswith("int")) for f in dataclasses.fields(TelemetrySummary)]
MACHINE = [
    *_columns("hostname platform cpu_model", text=True),
    Column("cpu_cores", integer=True),
    *_columns("gpu_model python_version tensorflow_version keras_version keras_tuner_version", text=True),
    *_columns("optuna_version sklearn_version", text=True, added=None),
    Column("jax_version", text=True, added=""),
    Column("commit", text=True),
    Column("keras_backend", text=True, added=""),
]
RUN_SCHEMA = [
    Column("run_id", text=True, required="always"),
    *_columns("started_at profile cell", text=True),
    Column("tuner", text=True, required="always"),
    Column("budget", text=True, required="always"),
    Column("max_trials", integer=True),
    Column("max_seconds"),
    Column("max_epochs", integer=True, added=None),
    Column("seed", integer=True, required="always"),
    *_columns("train_size val_size test_size epochs batch_size hyperband_factor num_initial_points", integer=True),
    Column("best_hyperparameters", text=True),
    *_columns("best_val_accuracy test_accuracy", required="ok"),
    Column("test_loss"),
    *_columns("search_seconds retrain_seconds evaluate_seconds", required="ok"),
    Column("wall_seconds"),
    *_columns("trials_completed trials_failed search_epochs", integer=True, required="ok"),
    Column("retrain_epochs", integer=True),
    Column("stopped_by", text=True, required="always"),
    Column("time_overrun_seconds"),
    Column("error", text=True),
    *TELEMETRY,
    *MACHINE,
    Column("workers", integer=True),
    Column("trials_cut", integer=True, added=0),
    Column("brackets_completed", integer=True, added=None),
    Column("space", text=True, added="mlp"),
    Column("search_seed", integer=True, added=None),
    Column("model_trials", integer=True, added=None),
    Column("init_seed_offset", integer=True, added=0),
    # "keras" or "replay" (spec.TRAINED_BY): a replayed row's seconds are its table's, measured where the table was.
    Column("trainer", text=True, added="keras"),
    Column("replay_table", text=True, added=""),
]
TRIAL_SCHEMA = [
    Column("run_id", text=True, required="always"),
    *_columns("profile cell tuner budget", text=True),
    Column("seed", integer=True),
    *_columns("trial_id hyperparameters", text=True),
    Column("status", text=True, required="always"),
    Column("val_accuracy", required="completed"),
    Column("epochs", integer=True, required="always"),
    *_columns("started_seconds seconds", required="always"),
    Column("error", text=True),
    *TELEMETRY,
    Column("worker", text=True),
    *_columns("bracket round initial_epoch", integer=True, added=None),
    Column("parent_trial_id", text=True, added=None),
    Column("proposed_by", text=True, added=""),
    Column("trainer", text=True, added="keras"),
]
# Views of the schema, for readers that need names.
RUN_COLUMNS = [column.name for column in RUN_SCHEMA]
TRIAL_COLUMNS = [column.name for column in TRIAL_SCHEMA]
TELEMETRY_COLUMNS = [column.name for column in TELEMETRY]
MACHINE_COLUMNS = [column.name for column in MACHINE]
TEXT_COLUMNS = {column.name for column in RUN_SCHEMA + TRIAL_SCHEMA if column.text}
# One name has one type in both tables (seed, epochs, samples are integers in each), so a set of names suffices.
INTEGER_COLUMNS = {column.name for column in RUN_SCHEMA + TRIAL_SCHEMA if column.integer}
ADDED_COLUMNS = {column.name: column.added for column in RUN_SCHEMA + TRIAL_SCHEMA if column.added is not NOT_ADDED}
