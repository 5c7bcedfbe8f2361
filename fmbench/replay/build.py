"""The measurement behind a table: each pending (configuration, seed) of a shard trained through KerasTrainer for
the table's epochs, scored on the validation and test sets after every epoch, timed per epoch, and appended whole
(fmbench.replay.table), so a killed build resumes where it stopped."""

from __future__ import annotations

import datetime
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import keras

from fmbench import machine
from fmbench.data import Split
from fmbench.models import scoring
from fmbench.models.trainer import KerasTrainer
from fmbench.registry import BASELINE
from fmbench.replay import configs, table
from fmbench.replay.configs import Plan
from fmbench.spec import RunSpec


class EpochRecorder(keras.callbacks.Callback):
    """Times each epoch between Keras's epoch hooks (so the scoring is not counted) and then scores the model on the
    validation and test sets, as a trial is scored (fmbench.models.scoring). Created just before the fit: the time
    until the fit begins is the model's build."""

    def __init__(self, split: Split, clock: Callable[[], float] = time.perf_counter):
        super().__init__()
        self._split, self._clock = split, clock
        self._created = clock()
        self.build_seconds = self.score_seconds = float("nan")
        self.epoch_seconds: list[float] = []
        self.val_accuracy: list[float] = []
        self.test_accuracy: list[float] = []

    def on_train_begin(self, logs=None):
        self.build_seconds = self._clock() - self._created

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = self._clock()

    def on_epoch_end(self, epoch, logs=None):
        # Keras has turned the epoch's loss into a Python float by now: the last step has run, even on JAX.
        scoring_started = self._clock()
        self.epoch_seconds.append(scoring_started - self._epoch_started)
        self.val_accuracy.append(scoring.score(self.model, self._split.x_val, self._split.y_val)[0])
        if len(self.val_accuracy) == 1:
            self.score_seconds = self._clock() - scoring_started  # a new model's first scoring, trace included
        self.test_accuracy.append(scoring.score(self.model, self._split.x_test, self._split.y_test)[0])

    def columns(self) -> dict:
        later = self.epoch_seconds[1:]
        compile_seconds = max(0.0, self.epoch_seconds[0] - statistics.median(later)) if later else float("nan")
        per_epoch = {
            f"{series}_{epoch}": value
            for series, values in zip(table.SERIES, (self.val_accuracy, self.test_accuracy, self.epoch_seconds))
            for epoch, value in enumerate(values, 1)
        }
        return {
            "build_seconds": self.build_seconds,
            "compile_seconds": compile_seconds,
            "score_seconds": self.score_seconds,
            **per_epoch,
        }


def measure(trainer: KerasTrainer, values: dict, seed: int, split: Split, plan: Plan) -> dict:
    """Train one configuration from weight seed `seed` and return its row's measured columns."""
    trainer.reset()
    keras.utils.set_random_seed(seed)  # as the protocol seeds a run's weights and data order
    recorder = EpochRecorder(split)
    trainer.train(
        values, split.x_train, split.y_train, epochs=plan.epochs, batch_size=plan.batch_size, callbacks=[recorder]
    )
    return recorder.columns()


# A width no configuration of the space has (units run from 32 in steps of 32), so no measured fit finds its shapes
# already compiled by the warm-up.
WARM_UP_MODEL = {"num_layers": 1, "units_0": 16, "dropout_0": 0.0, "learning_rate": 1e-3}


def warm_up(trainer: KerasTrainer, split: Split, plan: Plan) -> None:
    """One discarded fit and scoring of a small model on a batch: the backend's one-off start in this process would
    otherwise land on the first configuration's seconds (on JAX on the 2-core CPU, 0.3 s of a one-layer model's
    1.5 s build and 0.1 to 0.2 s of its first epoch)."""
    batch = slice(0, plan.batch_size)
    trainer.reset()
    x, y = split.x_train[batch], split.y_train[batch]
    trained = trainer.train(WARM_UP_MODEL, x, y, epochs=1, batch_size=plan.batch_size)
    scoring.score(trained.model, split.x_val[batch], split.y_val[batch])


def settings_of(split: Split, plan: Plan, info: dict) -> table.Settings:
    return table.Settings(
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        train_images=len(split.y_train),
        val_images=len(split.y_val),
        test_images=len(split.y_test),
        backend=keras.backend.backend(),
        machine=f"{info['cpu_model']} x{info['cpu_cores']}, {info['gpu_model']}",
        labels={
            name: table.label_fingerprint(y)
            for name, y in (("train", split.y_train), ("val", split.y_val), ("test", split.y_test))
        },
        sobol_seed=configs.SOBOL_SEED,
    )


def build(directory: Path, plan: Plan, split: Split, command: str, progress: Callable[[str], None] = print) -> int:
    """Measure the plan's pairs not yet in the table at `directory`; returns how many were measured."""
    info = machine.machine_info()
    table.create_or_check(directory, settings_of(split, plan, info))
    k, n = plan.shard
    table.add_session(
        directory,
        {
            "started_at": _now(),
            "command": command,
            "commit": info["commit"],
            "machine": info,
            "shard": f"{k}/{n}",
            "configs": plan.configs,
            "noise_configs": plan.noise_configs,
            "noise_seeds": plan.noise_seeds,
            "baseline_seeds": plan.baseline_seeds,
        },
    )
    stored = table.load(directory).pairs()
    planned = plan.pairs()
    pending = [pair for pair in planned if pair not in stored]
    progress(
        f"table {directory}: shard {k}/{n} holds {len(planned)} (configuration, seed) fits, "
        f"{len(planned) - len(pending)} already stored, {len(pending)} to measure ({plan.epochs} epochs each, "
        f"{len(split.y_train)} training images, Keras on {keras.backend.backend()})"
    )
    drawn = configs.draw(plan.configs)
    trainer = KerasTrainer(RunSpec(BASELINE, seed=1, epochs=plan.epochs, batch_size=plan.batch_size))  # its space
    if pending:
        warm_up(trainer, split, plan)
    started = time.monotonic()
    for done, (config_id, seed) in enumerate(pending, 1):
        baseline = config_id == configs.BASELINE_ID
        values = dict(trainer.baseline) if baseline else drawn[config_id]
        name = "baseline" if baseline else f"config {config_id}"
        fit_started = time.monotonic()
        row = {"config_id": config_id, "seed": seed, **values, **measure(trainer, values, seed, split, plan)}
        table.append_rows(directory, [{**row, "commit": info["commit"], "finished_at": _now()}])
        elapsed = time.monotonic() - started
        progress(
            f"[{done}/{len(pending)}] {name} seed {seed} {describe(values)}: val "
            f"{row[f'val_accuracy_{plan.epochs}']:.4f} test {row[f'test_accuracy_{plan.epochs}']:.4f}, "
            f"{time.monotonic() - fit_started:.1f} s (first epoch {row['epoch_seconds_1']:.2f} s); "
            f"ETA {_duration(elapsed / done * (len(pending) - done))}"
        )
    return len(pending)


def describe(values: dict) -> str:
    """'2 layers 256/0.1 64/0.0 lr 1.2e-03': units/dropout per layer."""
    layers = int(values["num_layers"])
    shape = " ".join(f"{values[f'units_{i}']}/{values[f'dropout_{i}']:.1f}" for i in range(layers))
    return f"{layers} layer{'s' if layers > 1 else ''} {shape} lr {values['learning_rate']:.1e}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
