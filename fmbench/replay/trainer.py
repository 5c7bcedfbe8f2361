"""ReplayTrainer: the trainer seam (fmbench.models.trainer.ResumableTrainer) answered from a measured table of learning
curves instead of Keras, so the real tuners search in seconds what took hours to measure.

A fit returns a `CurveRecord` (which configuration, how many epochs of its curve, which seed) as its "model";
`score` reads the accuracy there: the table's own curve for a configuration it measured (one of its measured
seeds), else the surrogate's mean plus that seed's noise. `save` / `resume_from` continue the same curve with the
same seed, as a Hyperband promotion continues its parent's weights (a real promotion restarts Adam, which the
table's straight curves do not show). Callbacks see every step group and epoch, as in Keras's fit: the budget's
callback may stop a fit mid-epoch, and Optuna's pruner reads `val_accuracy` from the epoch's logs. The clock
(`ReplayClock`) advances by the table's seconds (model build, each epoch, the first epoch's trace, the first
scoring) instead of the time the lookups take.

Where it plugs in: a RunSpec with trainer "replay" (the `replay` profile) names a table folder; protocol.TRAINERS
builds this trainer for it, and the run's searchers, telemetry and final fit all keep time by its clock, so trial,
search and retrain seconds and time budgets are the table's. Rows record the trainer and the table (fmbench.schema),
and the results model never mixes replayed rows with real ones. A replayed row's losses are empty (`score` returns
NaN: a table holds no loss); the distributed chief refuses replay (its workers have no table).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmbench.models import mlp
from fmbench.models.trainer import Trained
from fmbench.replay import table as tables
from fmbench.replay.surrogate import FitSeconds, Surrogate, first_fits, row_seconds
from fmbench.space import MLP, declare_keras_tuner


class ReplayError(ValueError):
    """A replay asked for something its table cannot answer: the message says what and why."""


class ReplayClock:
    """A search's clock under replay: wall time for what the search does itself (proposals, a Gaussian process's
    fit), the table's seconds for the fits it replays. Callable like time.monotonic, so SearchClock takes it.
    `wall=lambda: 0.0` gives a clock that moves by table seconds only."""

    def __init__(self, wall: Callable[[], float] = time.monotonic):
        self._wall = wall
        self._offset = 0.0
        self._paused_at: float | None = None

    def __call__(self) -> float:
        return (self._wall() if self._paused_at is None else self._paused_at) + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    @contextlib.contextmanager
    def replaying(self):
        """Wall time stands still inside (a lookup's own microseconds are no training); only advance() moves it."""
        if self._paused_at is not None:
            raise RuntimeError("ReplayClock.replaying() is not re-entrant")
        self._paused_at = self._wall()
        try:
            yield
        finally:
            self._offset -= self._wall() - self._paused_at
            self._paused_at = None


@dataclass
class CurveRecord:
    """A replayed model: a configuration, the epochs of its curve trained so far, and the seed whose curve it follows.
    `stop_training` is what Keras callbacks set on a model to stop its fit."""

    values: dict
    epochs_done: int
    seed: int
    stop_training: bool = False
    scored: bool = False  # the first scoring of a new model pays its inference trace


def config_key(values: dict) -> str:
    """A configuration's identity: its active values, floats to 12 significant digits (a CSV round trip's noise)."""
    active = MLP.active(values)
    return json.dumps({k: float(f"{v:.12g}") if isinstance(v, float) else int(v) for k, v in active.items()})


@dataclass(frozen=True)
class TableIndex:
    """What a replay looks up in a table, prepared once per table and process (0.1 s for 1,220 rows, in every one of
    a profile's cells otherwise): each measured configuration's rows, the row whose seconds it replays, the per-epoch
    series and each row's seconds."""

    measured: dict[str, list[int]]  # configuration -> its rows (one per measured seed)
    timed: dict[str, int]  # configuration -> the row whose seconds it replays (surrogate.first_fits)
    series: dict[str, np.ndarray]
    row_seconds: dict[str, np.ndarray]

    @classmethod
    def of(cls, table: tables.Table) -> TableIndex:
        measured: dict[str, list[int]] = {}
        timed: dict[str, int] = {}
        for position, first in enumerate(first_fits(table)):
            key = config_key(table.config(position))
            measured.setdefault(key, []).append(position)
            if first:
                timed[key] = position
        return cls(measured, timed, {name: table.series(name) for name in tables.SERIES}, row_seconds(table))


class ReplayTrainer:
    """models.trainer.ResumableTrainer over a table and its surrogate; `weight_seed` seeds the curves' seeds, each
    fresh fit drawing the next (a run's trials differ in their weights, as real ones do)."""

    def __init__(
        self,
        table: tables.Table,
        surrogate: Surrogate,
        weight_seed: int,
        clock: ReplayClock | None = None,
        index: TableIndex | None = None,
    ):
        self.baseline = dict(mlp.BASELINE_HPS)
        self.clock = clock or ReplayClock()
        self._table, self._surrogate = table, surrogate
        self._seeds = np.random.SeedSequence(weight_seed)
        self._splits = {fingerprint: name for name, fingerprint in table.settings.labels.items()}
        index = index or TableIndex.of(table)
        self._measured, self._timed, self._series = index.measured, index.timed, index.series
        self._row_seconds = index.row_seconds
        self._seconds: dict[str, FitSeconds] = {}

    @classmethod
    def from_dir(cls, directory: Path, weight_seed: int, clock: ReplayClock | None = None) -> ReplayTrainer:
        table, surrogate, index = fitted(Path(directory))
        return cls(table, surrogate, weight_seed, clock, index)

    def reset(self) -> None:
        """Nothing to forget: a record holds all a fit's state."""

    def hypermodel(self, hp) -> dict:
        """keras-tuner's model builder while it sets a tuner up: declares the space as the real one does, builds no
        model (Keras models took 0.6 s each, 5 s of a replayed search's 5.3), and spends the table's seconds of
        building one."""
        with self.clock.replaying():
            values = declare_keras_tuner(MLP, hp)
            self.clock.advance(self._fit_seconds(values).build)
            return values

    def train(
        self,
        values: dict,
        x,
        y,
        *,
        epochs: int,
        batch_size: int,
        initial_epoch: int = 0,
        resume_from: str | None = None,
        callbacks: Sequence = (),
        validation_data: tuple | None = None,
        metrics: tuple[str, ...] = (),
    ) -> Trained:
        with self.clock.replaying():
            self._split_of(y, expected="train")
            if epochs > self._table.settings.epochs:
                raise ReplayError(f"the table measured {self._table.settings.epochs} epochs; cannot replay {epochs}")
            if batch_size != self._table.settings.batch_size:  # its seconds and curves are of that batch size
                raise ReplayError(
                    f"the table measured batches of {self._table.settings.batch_size}; cannot replay {batch_size}"
                )
            if resume_from is None:
                record = CurveRecord(MLP.active(values), 0, int(self._seeds.spawn(1)[0].generate_state(1)[0]))
            else:
                record = self._resumed(resume_from, values, initial_epoch)
            self.clock.advance(self._fit_seconds(record.values).build)
            steps, per_call = math.ceil(len(y) / batch_size), mlp.STEPS_PER_EXECUTION
            group_ends = [min(start + per_call, steps) - 1 for start in range(0, steps, per_call)]
            for callback in callbacks:
                callback.set_model(record)
                callback.set_params({"epochs": epochs, "steps": steps, "verbose": 0})
            _each(callbacks, "on_train_begin")
            ran = 0
            for epoch in range(initial_epoch, epochs):
                _each(callbacks, "on_epoch_begin", epoch)
                seconds = self._epoch_seconds(record, epoch, first=epoch == initial_epoch)
                for end in group_ends:  # as Keras calls back once per step group (steps_per_execution)
                    self.clock.advance(seconds / len(group_ends))
                    _each(callbacks, "on_train_batch_end", end, {})
                    if record.stop_training:
                        break
                else:
                    record.epochs_done = epoch + 1  # only a whole epoch moves along the curve
                logs = {}
                # Keras's own validation after each epoch (what Optuna's pruner reads). A cut epoch is scored at the
                # curve's last whole epoch; before the first there is no score (the trial is cut anyway).
                if validation_data is not None and record.epochs_done:
                    self._split_of(validation_data[1], expected="val")
                    self.clock.advance(self._fit_seconds(record.values).score)
                    logs["val_accuracy"] = self._accuracy(record, "val")
                _each(callbacks, "on_epoch_end", epoch, logs)
                ran += 1  # as Keras's history, a cut epoch counts: BudgetCallback counts whole ones
                if record.stop_training:
                    break
            _each(callbacks, "on_train_end")
            return Trained(record, ran)

    def score(self, trained: Trained, x, y) -> tuple[float, float]:
        """(accuracy, NaN): the table holds no loss."""
        with self.clock.replaying():
            which = self._split_of(y)
            record = trained.model
            if not record.scored:
                self.clock.advance(self._fit_seconds(record.values).score)
                record.scored = True
            return self._accuracy(record, which), math.nan

    def save(self, trained: Trained, path: str) -> None:
        record = trained.model
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(
            json.dumps({"values": record.values, "epochs_done": record.epochs_done, "seed": record.seed})
        )

    def _resumed(self, path: str, values: dict, initial_epoch: int) -> CurveRecord:
        saved = json.loads(Path(path).read_text())
        record = CurveRecord(saved["values"], saved["epochs_done"], saved["seed"])
        if config_key(record.values) != config_key(values) or record.epochs_done != initial_epoch:
            raise ReplayError(
                f"{path} holds {record.values} after {record.epochs_done} epochs, not {MLP.active(values)} after "
                f"{initial_epoch}: a promotion continues its own parent's curve"
            )
        return record

    def _split_of(self, y, expected: str | None = None) -> str:
        """Which of the table's sets these labels are ("train", "val", "test"): a replay answers only for the images
        its table was measured on, and scores nothing on the training set."""
        fingerprint = tables.label_fingerprint(y)
        name = self._splits.get(fingerprint)
        if name not in ((expected,) if expected else ("val", "test")):
            measured = ", ".join(f"{k} {v}" for k, v in self._table.settings.labels.items())
            raise ReplayError(
                f"labels {fingerprint} are not the table's {expected or 'validation or test'} set ({measured}): "
                "replay on the data and sizes the table was measured with"
            )
        return name

    def _row(self, record: CurveRecord) -> int | None:
        """The table row of the record's configuration and seed, None where the table did not measure it."""
        rows = self._measured.get(config_key(record.values))
        return None if rows is None else rows[record.seed % len(rows)]

    def _fit_seconds(self, values: dict) -> FitSeconds:
        """The table's seconds of a measured configuration's first fit, else the surrogate's (kept: a configuration's
        epochs and promotions ask again)."""
        key = config_key(values)
        if key not in self._seconds:
            row = self._timed.get(key)
            self._seconds[key] = (
                self._surrogate.fit_seconds(MLP.active(values))
                if row is None
                else FitSeconds(**{name: float(series[row]) for name, series in self._row_seconds.items()})
            )
        return self._seconds[key]

    def _epoch_seconds(self, record: CurveRecord, epoch: int, first: bool) -> float:
        """Seconds of epoch `epoch` (0-based); a fit's first epoch traces its new model (measured epoch 1 includes
        the trace; a promotion's first pays it on top of its epoch)."""
        seconds = self._fit_seconds(record.values)
        row = self._timed.get(config_key(record.values))
        if row is None:
            return seconds.epoch + (seconds.compile if first else 0.0)
        return float(self._series["epoch_seconds"][row, epoch]) + (seconds.compile if first and epoch > 0 else 0.0)

    def _accuracy(self, record: CurveRecord, which: str) -> float:
        if record.epochs_done < 1:
            raise ReplayError("the model trained no whole epoch: the table has no score for it")
        row = self._row(record)
        if row is not None:
            return float(self._series[f"{which}_accuracy"][row, record.epochs_done - 1])
        # The same generator at every epoch: one draw of the seed's noise for its whole curve (surrogate.sample).
        val, test = self._surrogate.sample(record.values, record.epochs_done, np.random.default_rng(record.seed))
        return val if which == "val" else test


def fitted(directory: Path) -> tuple[tables.Table, Surrogate, TableIndex]:
    """The table in `directory`, its surrogate and its index, made once per process and state of the folder's files:
    every cell of a profile replays one table, and its surrogate takes about a second to fit. A folder that is no
    usable table is a one-line TableError."""
    directory = directory.resolve()
    return _fitted(directory, tuple(_stamp(directory / name) for name in (tables.HEADER_FILE, tables.TABLE_FILE)))


@functools.lru_cache(maxsize=2)
def _fitted(directory: Path, stamps: tuple) -> tuple[tables.Table, Surrogate, TableIndex]:
    try:
        table = tables.load(directory)
        return table, Surrogate.fit(table), TableIndex.of(table)
    except tables.TableError:
        raise
    except (ValueError, KeyError) as exc:  # no rows, a cell that is no number, a column missing
        why = " ".join(str(exc).split())[:200]
        raise tables.TableError(
            f"{directory}: no usable measured fits ({type(exc).__name__}: {why}); rebuild the table with "
            "`fmbench table build`"
        ) from None


def _stamp(path: Path) -> tuple[int, int] | None:
    """A file's size and modification time: a table rebuilt or extended in place is read and fitted anew."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _each(callbacks: Sequence, hook: str, *args) -> None:
    for callback in callbacks:
        getattr(callback, hook)(*args)
