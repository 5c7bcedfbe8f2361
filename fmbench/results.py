"""Result rows: RunResult / TrialRecord -> flat rows; atomic CSV appends; reading back with validation.

Over 300 lines because it holds the one column schema (about 60 lines) beside the writers and readers that use it,
and the machine (one gatherer, extended by hooks) and commit every row records.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from fmbench import atomic
from fmbench.registry import BASELINES
from fmbench.spec import RunResult, TelemetrySummary

RUNS_FILE = "runs.csv"
TRIALS_FILE = "trials.csv"
LOCK_FILE = ".fmbench.lock"  # held by every writer of a results folder; kept there, as flock needs one inode
NOT_ADDED = object()  # Column.added of the columns every table has had


@dataclass(frozen=True)
class Column:
    """One column of runs.csv or trials.csv: the one schema every writer and reader of the tables uses."""

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


class ResultsError(ValueError):
    """A results file is missing, empty or malformed: the message names the file and the fix."""


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
        }
        rows.append({column: row.get(column) for column in TRIAL_COLUMNS})
    return rows


def folder_lock(directory: Path) -> FileLock:
    """The lock every writer of a results folder holds around read-check-write, across processes and hosts.

    Hold it once at a time: it is not re-entrant across instances, so a nested acquire waits forever.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return FileLock(directory / LOCK_FILE)


def append_rows(path: Path, rows: list[dict], columns: list[str]) -> None:
    """Append rows to a CSV table atomically. Existing rows are kept byte for byte, never re-parsed.

    Under the folder's lock: two processes appending at once would each rewrite the file from what
    they read, and one's rows would be lost.
    """
    if not rows:
        return
    path = Path(path)
    frame = _typed(pd.DataFrame(rows, columns=columns), path)
    header, body = frame.to_csv(index=False, lineterminator="\n").split("\n", 1)
    with folder_lock(path.parent):
        if not path.exists():
            atomic.write_text(path, f"{header}\n{body}")
            return
        read_table(path, columns)  # refuse to extend a malformed table
        existing = path.read_text()
        if existing.split("\n", 1)[0] != header:
            raise ResultsError(
                f"{path}: its columns differ from this fmbench version's; move it aside or write to a new folder"
            )
        atomic.write_text(path, existing + ("" if existing.endswith("\n") else "\n") + body)


def whole_numbers(values: pd.Series) -> tuple[pd.Series, int | None]:
    """The values as nullable integers, and the position of the first that is not a whole number (None if none).

    Empty stays empty: pandas holds an integer column with a gap as floats, which CSV would write as '1.0'.
    """
    numbers = pd.to_numeric(values, errors="coerce")
    bad = (numbers.isna() & values.notna()) | (numbers.notna() & (numbers % 1 != 0))  # inf % 1 is NaN: refused too
    if bad.any():
        return values, int(np.flatnonzero(bad.to_numpy())[0])
    return numbers.astype("Int64"), None


def _typed(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The frame with its integer columns as integers, as the schema stores them; a fraction there is a bug."""
    for column in [c for c in frame.columns if c in INTEGER_COLUMNS]:
        frame[column], bad = whole_numbers(frame[column])
        if bad is not None:
            raise ResultsError(
                f"{path}: column {column} would get {frame[column].tolist()[bad]!r}, not a whole number; the writer "
                "must pass an integer or None (nothing was written)"
            )
    return frame


def save_run(out_dir: Path, result: RunResult) -> None:
    """Append one run and its trials to out_dir/runs.csv and out_dir/trials.csv.

    Trials go first: a run row is the marker that a run is complete (resume reads runs.csv).
    """
    append_rows(Path(out_dir) / TRIALS_FILE, trial_rows(result), TRIAL_COLUMNS)
    append_rows(Path(out_dir) / RUNS_FILE, [run_row(result, machine_info())], RUN_COLUMNS)


def read_table(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read a runs.csv / trials.csv; a missing, empty or malformed file raises ResultsError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"{path}: no such results file; run `fmbench run` or the benchmark suite first")
    try:
        # Text stays text: trial '0001' must not come back as 1, nor commit '1234e5678901' as inf.
        frame = pd.read_csv(path, dtype={column: str for column in TEXT_COLUMNS})
    except pd.errors.EmptyDataError:
        raise ResultsError(f"{path}: the file is empty; delete it and rerun the benchmark") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ResultsError(
            f"{path}: not a readable CSV ({str(exc).splitlines()[0]}); fix the line it names (the file is left as "
            "it is)"
        ) from None
    for column, value in ADDED_COLUMNS.items():
        if column in columns and column not in frame.columns:
            frame[column] = value
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ResultsError(
            f"{path}: missing columns {', '.join(missing[:5])}; it was not written by this fmbench version, "
            "rerun the benchmark"
        )
    return frame


def read_runs(directory: Path) -> pd.DataFrame:
    return read_table(Path(directory) / RUNS_FILE, RUN_COLUMNS)


def read_trials(directory: Path) -> pd.DataFrame:
    return read_table(Path(directory) / TRIALS_FILE, TRIAL_COLUMNS)


# --- machine info: one gatherer, extended by hooks (pytest-benchmark's pytest_benchmark_update_machine_info) -------

MachineHook = Callable[[dict], None]  # updates a machine-info dict in place: adds a field's value or corrects one
MACHINE_HOOKS: list[MachineHook] = []  # hooks every row applies; a plugin or conftest appends its own here
LIBRARIES = {  # row column -> the distribution whose installed version it records
    "tensorflow_version": "tensorflow",
    "keras_version": "keras",
    "keras_tuner_version": "keras-tuner",
    "optuna_version": "optuna",
    "sklearn_version": "scikit-learn",
    "jax_version": "jax",
}


def machine_info(hooks: Iterable[MachineHook] | None = None) -> dict:
    """Where and with what a run ran, one value per MACHINE column: what this module gathers, then each hook
    (MACHINE_HOOKS unless `hooks` is given) in order. A hook may only set machine columns: a row has no others."""
    info = dict(_gathered())
    for hook in MACHINE_HOOKS if hooks is None else hooks:
        hook(info)
        unknown = [key for key in info if key not in MACHINE_COLUMNS]
        if unknown:
            raise ResultsError(
                f"machine hook {getattr(hook, '__name__', hook)!r} set {', '.join(map(str, unknown))}, which rows "
                f"have no column for; set one of {', '.join(MACHINE_COLUMNS)}, or add a Column to results.MACHINE"
            )
    return {column: info.get(column) for column in MACHINE_COLUMNS}


@functools.lru_cache(maxsize=1)
def _gathered() -> dict:
    """What this module knows, read once per process: importing the libraries for their versions takes seconds."""
    return {**host_info(), **library_versions(), "commit": code_commit()}


def host_info() -> dict:
    """Host, CPU, GPU and Python; the host name changes with every VM, so history keys machines on the others."""
    from fmbench import telemetry

    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu_model": ", ".join(telemetry.gpu_names()) or "no GPU",  # never empty: rows are grouped by it
        "python_version": platform.python_version(),
    }


def library_versions() -> dict:
    """The installed versions of the libraries that train and search, read from their metadata ('not installed'
    for one that is absent: a JAX-only GPU machine has no TensorFlow), and the Keras backend: KERAS_BACKEND changes
    every number silently. Importing TensorFlow for its version would load it on a JAX run."""
    from fmbench import backend

    versions = {column: backend.installed_version(name) for column, name in LIBRARIES.items()}
    if versions["keras_version"] == "not installed":
        return versions | {"keras_backend": "not installed"}
    return versions | {"keras_backend": backend.name()}


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo's text (read here unless given); where it names none (no Linux, an
    ARM kernel), the platform's processor or machine name, so the row is never empty."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def code_commit() -> str:
    """The commit every row of this process records, read once: a session reads it before its first cell, so a
    commit made while the session runs (its code already loaded) never labels its rows."""
    return _commit()


def _commit() -> str:
    """The git commit of the fmbench checkout, with '-dirty' when its code has uncommitted changes; 'unknown'
    without one.

    Changes under results/ and to markdown files do not count: a run rewriting the committed tables it is about
    to replace, or the README edited while a session runs, is no change to the code that produces the rows.

    Only a checkout whose root holds this package counts: an installed copy (in a virtual
    environment inside some other repository, say) must not report that repository's commit.
    """
    here = Path(__file__).resolve().parent
    try:
        top = _git(here, "rev-parse", "--show-toplevel")
        if Path(top).resolve() != here.parent:
            return "unknown"
        sha = _git(here, "rev-parse", "--short=12", "HEAD")
        dirty = _git(
            here.parent,
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)results",
            ":(exclude)*.md",
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
