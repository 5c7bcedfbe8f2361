"""A results folder's tables, runs.csv and trials.csv: appends under the folder's lock, atomic writes, and reading
them back typed and checked against the schema (fmbench.schema)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from fmbench import atomic
from fmbench.schema import ADDED_COLUMNS, INTEGER_COLUMNS, RUN_COLUMNS, TEXT_COLUMNS, TRIAL_COLUMNS

RUNS_FILE = "runs.csv"
TRIALS_FILE = "trials.csv"
LOCK_FILE = ".fmbench.lock"  # held by every writer of a results folder; kept there, as flock needs one inode


class ResultsError(ValueError):
    """A results file is missing, empty or malformed: the message names the file and the fix."""


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
