"""A table of learning curves on disk: `header.json` (what was measured, how, where) and `table.csv.gz`, one row per
(configuration, weight seed) with one column per epoch for each measured series.

One row per (configuration, seed), not per epoch: a row is exactly one finished fit, so the unit the builder writes,
resumes and skips is the unit a reader sees; a torn write can lose a fit but never leave one with half its epochs.

`table.csv.gz` is a chain of gzip members (a valid gzip file: `zcat`, pandas and Python's gzip read it whole): the
first holds the CSV header, each later one the rows of one finished fit, appended, flushed and fsync'd under the
folder's lock. A member cut by a kill has no valid end (zlib checks its CRC and length), so readers drop it, and
the next append trims it off before writing: no half-written row is ever read or built upon.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from fmbench import atomic
from fmbench.space import MLP
from fmbench.spec import SpecError

FORMAT_VERSION = 1
TABLE_FILE = "table.csv.gz"
HEADER_FILE = "header.json"
LOCK_FILE = ".table.lock"  # held by every writer (shards may run at once into one folder)
KNOBS = tuple(knob.name for knob in MLP.knobs)
SERIES = ("val_accuracy", "test_accuracy", "epoch_seconds")  # one column per epoch each: val_accuracy_1 ...


class TableError(SpecError):
    """A table folder that cannot be used as asked: the message names the file, the problem and the fix."""


@dataclass(frozen=True)
class Settings:
    """What every row of a table was measured with; a resume or a replay on other settings would mix populations."""

    epochs: int
    batch_size: int
    train_images: int
    val_images: int
    test_images: int
    backend: str
    machine: str  # CPU model, cores and GPU: the seconds are this machine's
    labels: dict  # split name -> label_fingerprint of the labels measured on (train, val, test)
    sobol_seed: int
    space: str = "mlp"
    format_version: int = FORMAT_VERSION


def label_fingerprint(y) -> str:
    """Identifies a split by its labels (count and CRC32): a replay scores only the images its table was measured on,
    and tells the validation set from the test set even where both hold 10,000 images."""
    labels = np.ascontiguousarray(np.asarray(y, dtype=np.int64))
    return f"{len(labels)}:{zlib.crc32(labels.tobytes()):08x}"


def columns(epochs: int) -> list[str]:
    """The CSV columns of a table of `epochs` epochs. compile_seconds: the first epoch's seconds beyond a later
    epoch's median (the trace); build_seconds: making the model; score_seconds: the first scoring of the validation
    set (a new model's inference trace included), what a trial pays once after its fit."""
    per_epoch = [f"{series}_{epoch}" for series in SERIES for epoch in range(1, epochs + 1)]
    return [
        "config_id",
        "seed",
        *KNOBS,
        "build_seconds",
        "compile_seconds",
        "score_seconds",
        *per_epoch,
        "commit",
        "finished_at",
    ]


@dataclass(frozen=True)
class Table:
    """A loaded table: its settings, the sessions that built it, and its rows (one per configuration and seed)."""

    settings: Settings
    sessions: tuple[dict, ...]
    rows: pd.DataFrame

    def series(self, name: str) -> np.ndarray:
        """(rows, epochs) array of one per-epoch series (SERIES)."""
        return self.rows[[f"{name}_{e}" for e in range(1, self.settings.epochs + 1)]].to_numpy(dtype=float)

    def config(self, index: int) -> dict:
        """Active values of the row at `index` (position), as the space's adapters give them."""
        row = self.rows.iloc[index]
        # CSV gives every number back as a float: ints where the space declares ints.
        typed = {name: int if MLP[name].kind == "int" else float for name in KNOBS}
        return MLP.active({name: typed[name](row[name]) for name in KNOBS if not pd.isna(row[name])})

    def pairs(self) -> set[tuple[int, int]]:
        return set(zip(self.rows["config_id"].astype(int), self.rows["seed"].astype(int)))


def create_or_check(directory: Path, settings: Settings) -> None:
    """Make a new table folder, or check that an existing one was measured with the same settings (a resume)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with FileLock(directory / LOCK_FILE):
        if (directory / HEADER_FILE).exists():
            stored = read_settings(directory)
            differ = [
                f"{f.name} {getattr(stored, f.name)!r} here, {getattr(settings, f.name)!r} now"
                for f in dataclasses.fields(Settings)
                if getattr(stored, f.name) != getattr(settings, f.name)
            ]
            if differ:
                raise TableError(
                    f"{directory / HEADER_FILE}: this table was measured with other settings ({'; '.join(differ)}); "
                    "resume it with the same options on the same kind of machine, or build into a new folder"
                )
            return
        atomic.write_text(directory / HEADER_FILE, _dump({"settings": dataclasses.asdict(settings), "sessions": []}))
        header = ",".join(columns(settings.epochs)) + "\n"
        atomic.write_bytes(directory / TABLE_FILE, gzip.compress(header.encode(), mtime=0))


def add_session(directory: Path, session: dict) -> None:
    """Record one build invocation (command, commit, machine, shard) in the header."""
    with FileLock(Path(directory) / LOCK_FILE):
        header = _read_header(Path(directory))
        header["sessions"].append(session)
        atomic.write_text(Path(directory) / HEADER_FILE, _dump(header))


def append_rows(directory: Path, rows: list[dict]) -> int:
    """Append finished fits as one gzip member, fsync'd, under the folder's lock; returns how many were written.
    A (configuration, seed) already stored (another process measured it meanwhile) is not written twice."""
    directory = Path(directory)
    path = directory / TABLE_FILE
    with FileLock(directory / LOCK_FILE):
        epochs = read_settings(directory).epochs
        texts, whole = _members(path.read_bytes())
        stored = {(row["config_id"], row["seed"]) for row in _parse(texts, path)}
        new = [row for row in rows if (int(row["config_id"]), int(row["seed"])) not in stored]
        if not new:
            return 0
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([_cell(row.get(c)) for c in columns(epochs)] for row in new)
        with open(path, "r+b") as handle:
            handle.truncate(whole)  # a member cut by an earlier kill goes before anything follows it
            handle.seek(whole)
            handle.write(gzip.compress(buffer.getvalue().encode(), mtime=0))
            handle.flush()
            os.fsync(handle.fileno())
        return len(new)


def load(directory: Path) -> Table:
    """The table in `directory`, whole rows only (a fit cut by a kill is not there)."""
    directory = Path(directory)
    settings = read_settings(directory)
    path = directory / TABLE_FILE
    if not path.is_file():
        raise TableError(f"{path}: missing; build the table with `fmbench table build {directory}`")
    texts, _ = _members(path.read_bytes())
    rows = pd.DataFrame(_parse(texts, path), columns=columns(settings.epochs))
    for name in rows.columns:
        if name not in ("commit", "finished_at"):
            rows[name] = pd.to_numeric(rows[name])
    return Table(settings, tuple(_read_header(directory)["sessions"]), rows)


def read_settings(directory: Path) -> Settings:
    path = Path(directory) / HEADER_FILE
    try:
        fields = _read_header(Path(directory))["settings"]
        version = fields.get("format_version")
    except (KeyError, TypeError, AttributeError):
        raise TableError(f"{path}: no table settings in it; rebuild the table with `fmbench table build`") from None
    if version != FORMAT_VERSION:
        raise TableError(
            f"{path}: table format {version!r}, this fmbench reads {FORMAT_VERSION}; rebuild it with this version "
            "(`fmbench table build`), or read it with the fmbench that wrote it"
        )
    try:
        return Settings(**fields)
    except TypeError as exc:
        raise TableError(f"{path}: malformed settings ({exc}); rebuild the table with `fmbench table build`") from None


def check_replayable(directory: Path, epochs: int, batch_size: int) -> Settings:
    """The settings of the table in `directory`, checked against a run that replays fits of `epochs` epochs in batches
    of `batch_size`: a one-line TableError before the run starts, not a failed trial in every cell."""
    settings = read_settings(directory)
    if epochs > settings.epochs or batch_size != settings.batch_size:
        raise TableError(
            f"{directory}: the table measured {settings.epochs} epochs in batches of {settings.batch_size}, so it "
            f"cannot replay {epochs} epochs in batches of {batch_size}; build one for the run's profile with "
            "`fmbench table build DIR --profile PROFILE`"
        )
    return settings


def _read_header(directory: Path) -> dict:
    path = directory / HEADER_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TableError(
            f"{path}: missing, so {directory} is not a table; build one with `fmbench table build`"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TableError(
            f"{path}: not valid JSON ({exc}); restore it from the build's output or rebuild with `fmbench table build`"
        ) from None


def _members(raw: bytes) -> tuple[list[bytes], int]:
    """The decompressed whole gzip members of `raw`, and the byte length they span. Reading stops at the first member
    without a valid end (cut by a kill: no end-of-stream, or a CRC that does not match)."""
    texts, offset = [], 0
    while offset < len(raw):
        member = zlib.decompressobj(wbits=31)  # gzip wrapper: checks the member's CRC32 and length
        try:
            text = member.decompress(raw[offset:])
        except zlib.error:
            break
        if not member.eof:
            break
        texts.append(text)
        offset = len(raw) - len(member.unused_data)
    return texts, offset


def _parse(texts: list[bytes], path: Path) -> list[dict]:
    if not texts:
        raise TableError(f"{path}: no CSV header, not a table written by `fmbench table build`; move it aside")
    reader = csv.DictReader(io.StringIO(b"".join(texts).decode()))
    return [{**row, "config_id": int(row["config_id"]), "seed": int(row["seed"])} for row in reader]


def _cell(value) -> str:
    """A CSV cell: empty for an inactive knob; floats by repr, which reads back to the same float."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _dump(header: dict) -> str:
    return json.dumps(header, indent=2, sort_keys=True) + "\n"
