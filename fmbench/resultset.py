"""One model of stored results: load one or several results folders and answer, once, which rows count.

Several folders are the shards of one matrix (`--fmbench-shard K/N`) or a run continued elsewhere; their rows
are read as one table. For each (profile, cell) the latest row by `started_at` is *current*; earlier ones are
*superseded* (a failed cell re-run by `--fmbench-resume` leaves its failed row in the file). Report, plots,
check, history, resume and the terminal summary all read through this module's loaders, which check every row
against the schema in fmbench/schema.py and give its types (integers as nullable integers), so they agree on every
count and never misread a folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fmbench import results
from fmbench.registry import BASELINE, TUNER_NAMES
from fmbench.results import ResultsError
from fmbench.schema import RUN_SCHEMA, TRIAL_COLUMNS, TRIAL_SCHEMA, Column

RUN_REQUIRED = [c.name for c in RUN_SCHEMA if c.required == "always"]  # in every row
RUN_REQUIRED_OK = [c.name for c in RUN_SCHEMA if c.required == "ok"]  # in every run that did not fail
TRIAL_REQUIRED = [c.name for c in TRIAL_SCHEMA if c.required == "always"]
TRIAL_REQUIRED_COMPLETED = [c.name for c in TRIAL_SCHEMA if c.required == "completed"]


def ended_in_error(runs: pd.DataFrame) -> pd.Series:
    """Runs whose row records an error: the only rows that may lack an accuracy."""
    return (runs["stopped_by"] == "error") | (runs["error"].fillna("").astype(str) != "")


def failed_runs(runs: pd.DataFrame) -> pd.Series:
    """Runs that ended in an error or carry no test accuracy: they count in a cell's seeds, never in its numbers."""
    accuracy = pd.to_numeric(runs["test_accuracy"], errors="coerce")
    return ended_in_error(runs) | accuracy.isna()


def cell_order(pairs) -> list[tuple[str, str]]:
    """(tuner, budget) cells in report order: the baseline, then each budget's tuners in registry order."""
    order = {name: i for i, name in enumerate(TUNER_NAMES)}
    return sorted(set(pairs), key=lambda c: (c[0] != BASELINE, c[1], order.get(c[0], len(order)), c[0]))


def cell_rows(runs: pd.DataFrame, tuner: str, budget: str) -> pd.DataFrame:
    """The rows of one cell (tuner, budget), by seed."""
    return runs[(runs["tuner"] == tuner) & (runs["budget"] == budget)].sort_values("seed", kind="stable")


@dataclass(frozen=True)
class ResultSet:
    """Every row read, with the answers: `runs` are the current rows (column `failed` set), `superseded` the rest."""

    sources: tuple[Path, ...]
    runs: pd.DataFrame
    superseded: pd.DataFrame
    trials: pd.DataFrame  # trials of current runs only
    orphan_trials: int  # trial rows of superseded runs or of no run at all (a run still in progress)

    @property
    def failed(self) -> pd.DataFrame:
        return self.runs[self.runs["failed"]]

    @property
    def ok(self) -> pd.DataFrame:
        return self.runs[~self.runs["failed"]]

    def cells(self) -> list[tuple[str, str]]:
        return cell_order(zip(self.runs["tuner"], self.runs["budget"]))

    def cell_runs(self, tuner: str, budget: str) -> pd.DataFrame:
        """The current rows of one cell, by seed."""
        return cell_rows(self.runs, tuner, budget)

    def run_trials(self, run_id: str) -> pd.DataFrame:
        """One run's trials in start order."""
        own = self.trials[self.trials["run_id"] == run_id]
        return own.sort_values(["started_seconds", "trial_id"], kind="stable")

    def describe(self) -> str:
        return ", ".join(str(s) for s in self.sources)

    def shared_models(self) -> list[tuple[str, list[str]]]:
        """(best hyperparameters, runs) for every configuration that several finished tuned runs retrained,
        within a seed or across seeds; each run as 'tuner budget seedN'. Such runs are one piece of evidence."""
        ok = self.ok[self.ok["tuner"] != BASELINE]
        shared = []
        for hps, group in ok.groupby("best_hyperparameters", sort=True):
            if len(group) > 1:
                ordered = group.sort_values(["seed", "tuner", "budget"], kind="stable")
                shared.append((str(hps), [f"{r.tuner} {r.budget} seed{int(r.seed)}" for r in ordered.itertuples()]))
        return shared

    def without_failed(self) -> ResultSet:
        """The same current rows less the failed ones, with their trials: what a gate reference is built from."""
        ok = self.ok
        return dataclasses.replace(self, runs=ok, trials=self.trials[self.trials["run_id"].isin(ok["run_id"])])


def load(directories) -> ResultSet:
    """Validated rows of one or several results folders; any problem is a one-line ResultsError naming the file."""
    directories = _folders(directories)
    return _from_frames(*_read(directories), directories)


def load_groups(directories, by: Callable[[pd.DataFrame], list[pd.Series]]) -> list[tuple[tuple, ResultSet]]:
    """Validated rows of folders that hold several runs of one matrix (a history store: one per machine and commit),
    as one ResultSet per group of the keys `by` gives each row, in the order the groups first appear. Each group
    picks its current rows within itself: a cell rerun at a later commit supersedes nothing at an earlier one."""
    directories = _folders(directories)
    runs, trials = _read(directories)
    groups = []
    for key, rows in runs.groupby(by(runs), sort=False):
        own = trials[trials["run_id"].isin(rows["run_id"])]
        groups.append((key, _from_frames(rows, own, directories)))
    return groups


def _folders(directories) -> list[Path]:
    directories = [Path(directories)] if isinstance(directories, (str, Path)) else [Path(d) for d in directories]
    if not directories:
        raise ResultsError("no results folder given; name at least one, e.g. results/smoke")
    return directories


def _read(directories: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every row of the folders, validated and in the schema's types, in file order."""
    all_runs, all_trials = [], []
    for directory in directories:
        runs, trials = _load_one(directory)
        all_runs.append(runs)
        all_trials.append(trials)
    runs = pd.concat(all_runs, ignore_index=True)
    seen = runs["run_id"].duplicated()
    if seen.any():
        raise ResultsError(
            f"run {runs['run_id'][seen].iloc[0]} appears twice in {', '.join(map(str, directories))}; name "
            "each results folder once"
        )
    trials = pd.concat(all_trials, ignore_index=True) if any(len(t) for t in all_trials) else all_trials[0]
    return runs, trials


# Rows written before rows named their Keras backend (keras_backend empty) all ran on TensorFlow.
UNNAMED_BACKEND = "tensorflow"


def _from_frames(runs: pd.DataFrame, trials: pd.DataFrame, sources) -> ResultSet:
    """The model of validated rows (read in file order, as _read concatenates them): private, so that every reader
    of a results folder comes through load or load_groups and gets the schema's checks and types."""
    runs = runs.reset_index(drop=True).copy()
    where = ", ".join(map(str, sources)) or "results"
    if runs.empty:
        raise ResultsError(f"{where}: no runs recorded; run the benchmark first")
    runs["keras_backend"] = runs["keras_backend"].replace("", UNNAMED_BACKEND)
    backends = sorted(set(runs["keras_backend"]))
    if len(backends) > 1:
        # Each backend is its own population (its numerics, its speed): a comparison across two measures both.
        raise ResultsError(
            f"{where}: rows of Keras on {' and on '.join(backends)} in one comparison; read each backend's rows "
            "on their own (one folder per backend)"
        )
    runs["trainer"] = runs["trainer"].replace("", "keras")  # as the column reads where a table lacks it
    trainers = sorted(set(runs["trainer"]))
    if len(trainers) > 1:
        # A replayed row's accuracy is a table's curve and its seconds the table's machine's: it measures the replay.
        raise ResultsError(
            f"{where}: replayed and real rows in one comparison (trainers {' and '.join(trainers)}); read each "
            "trainer's rows on their own (one folder per trainer)"
        )
    runs["budget"] = runs["budget"].astype(object).where(runs["budget"].notna(), "none").astype(str)
    runs["failed"] = failed_runs(runs)
    order = runs.assign(_row=range(len(runs))).sort_values(["started_at", "_row"], kind="stable")
    # Rows from before cells were named (text read as '' where empty) are told apart by what names a cell.
    key = ["profile", "cell"] if (runs["cell"] != "").all() else ["profile", "tuner", "budget", "seed"]
    late = order.duplicated(key, keep="last")
    superseded = runs.loc[order.index[late.to_numpy()]]
    current = runs.drop(index=superseded.index)
    known = trials[trials["run_id"].isin(current["run_id"])]
    return ResultSet(tuple(Path(s) for s in sources), current, superseded, known, len(trials) - len(known))


def _load_one(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs_path, trials_path = directory / results.RUNS_FILE, directory / results.TRIALS_FILE
    runs = results.read_runs(directory)
    if runs.empty:
        raise ResultsError(f"{runs_path}: no runs recorded; run the benchmark first")
    runs = _coerce(runs, runs_path, RUN_SCHEMA, RUN_REQUIRED)
    _require(runs, runs_path, RUN_REQUIRED_OK, ~ended_in_error(runs).to_numpy())
    for i, text in enumerate(runs["best_hyperparameters"]):
        try:
            json.loads(text or "{}")
        except json.JSONDecodeError:
            raise ResultsError(
                f"{runs_path}: line {i + 2}: column best_hyperparameters is not JSON; fix or delete the row and rerun"
            ) from None
    if not trials_path.is_file() and (runs["trials_completed"].fillna(0) + runs["trials_failed"].fillna(0)).sum() == 0:
        trials = pd.DataFrame(columns=TRIAL_COLUMNS)  # only runs without trials (e.g. baselines): none written
    else:
        trials = results.read_trials(directory)
    trials = _coerce(trials, trials_path, TRIAL_SCHEMA, TRIAL_REQUIRED)
    _require(trials, trials_path, TRIAL_REQUIRED_COMPLETED, (trials["status"] == "COMPLETED").to_numpy())
    return runs, trials


def _coerce(frame: pd.DataFrame, path: Path, schema: list[Column], required: list[str]) -> pd.DataFrame:
    """Numbers parsed to the schema's types (a bad one names its line), text as text with empty for missing,
    required cells present."""
    frame = frame.copy()
    for column in (c for c in schema if not c.text):
        frame[column.name] = _numbers(frame[column.name], column, path)
    for column in (c.name for c in schema if c.text):
        if column in frame.columns:
            frame[column] = frame[column].map(
                lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
            )
    _require(frame, path, required, np.ones(len(frame), dtype=bool))
    # The schema's order, whichever version wrote the file (added columns were read in at the end); others kept after.
    names = [c.name for c in schema]
    return frame[names + [c for c in frame.columns if c not in names]]


def _numbers(values: pd.Series, column: Column, path: Path) -> pd.Series:
    """One numeric column: integers as nullable integers (a gap stays a gap, never turns 1 into 1.0), the rest
    as floats."""
    if column.integer:
        parsed, bad = results.whole_numbers(values)
        kind = "a whole number"
    else:
        parsed = pd.to_numeric(values, errors="coerce").astype(float)
        found = np.flatnonzero((parsed.isna() & values.notna()).to_numpy())
        bad, kind = (int(found[0]) if len(found) else None), "a number"
    if bad is not None:
        raise ResultsError(
            f"{path}: line {bad + 2}: column {column.name} is {values.tolist()[bad]!r}, not {kind}; fix or delete the "
            "row and rerun"
        )
    return parsed


def _require(frame: pd.DataFrame, path: Path, columns: list[str], where) -> None:
    for column in columns:
        values = frame[column]
        empty = (values.isna() | (values == "")).to_numpy() & np.asarray(where)
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise ResultsError(f"{path}: line {i + 2}: column {column} is empty; fix or delete the row and rerun")
