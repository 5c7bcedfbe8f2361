"""The run protocol: search with the tuner's searcher and trainer under the budget -> retrain the best from scratch
with the trainer -> test once.

The same protocol for every tuner and the baseline (a searcher that proposes its one fixed configuration), so a
difference between rows is the tuning. Which searcher and trainer a tuner has comes from its registry entry
(fmbench.registry), unless the spec replays its Keras fits from a table (RunSpec.trainer "replay"); any failure
becomes a row with its error, never an exception. Every second a row records is the trainer's clock's: wall time
where models train here, the table's seconds where they are replayed.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import keras

from fmbench import backend, telemetry
from fmbench.data import Split
from fmbench.models.trainer import KerasTrainer, Trainer
from fmbench.registry import RUNNERS
from fmbench.search import base
from fmbench.search.base import Progress, Searcher, SearchFailed, last_line, recorded_initial_points
from fmbench.spec import DataSizes, FinalFit, RunResult, RunSpec, SearchOutcome


def run(spec: RunSpec, split: Split, progress: Progress = print, searcher: Searcher | None = None) -> RunResult:
    """One run of the protocol. Any failure becomes a row with its error, never an exception.

    `searcher` replaces the registry's in-process one (fmbench.search.distributed's chief passes its own); the
    retrain and the single test evaluation stay the same. A replay table that cannot be read is bad input, not a
    failed run: its SpecError is raised before anything runs.
    """
    backend.limit_gpu_memory()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    trainer = trainer_for(spec)
    searcher = searcher or searcher_for(spec)
    outcome, final, error = SearchOutcome(best_hyperparameters={}, stopped_by="exhausted"), FinalFit(), ""
    # keras-tuner writes trial JSON every trial (and Hyperband a checkpoint): keep them in memory where we can.
    workdir = tempfile.mkdtemp(prefix=f"fmbench-{spec.cell}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    with SAMPLERS[spec.trainer](trainer.clock) as sampler:
        try:
            keras.utils.set_random_seed(spec.weight_seed)
            outcome = searcher(spec, split, trainer, workdir, sampler, progress)
            final = final_fit(spec, split, trainer, outcome.best_hyperparameters, outcome.best_val_accuracy is None)
            progress(f"[{spec.cell}] test accuracy {final.test_accuracy:.4f} (retrain {final.retrain_seconds:.1f}s)")
        except SearchFailed as exc:
            outcome, error = exc.partial, str(exc)
            progress(f"[{spec.cell}] ERROR {exc}")
        except Exception as exc:  # the row records it; the suite goes on
            error = f"{type(exc).__name__}: {last_line(str(exc))}"
            outcome = dataclasses.replace(outcome, stopped_by="error")
            progress(f"[{spec.cell}] ERROR {error}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            trainer.reset()
    if outcome.best_val_accuracy is None:
        # A fixed model's search scores nothing: its retrained model's validation accuracy is its score.
        outcome = dataclasses.replace(outcome, best_val_accuracy=final.val_accuracy)
    # The row records the images the run used: data.load caps sizes at what the data holds.
    used = DataSizes(train=len(split.y_train), val=len(split.y_val), test=len(split.y_test))
    return RunResult(
        spec=dataclasses.replace(spec, sizes=used),
        run_id=f"{spec.cell}-{uuid.uuid4().hex[:8]}",
        started_at=started_at,
        num_initial_points=recorded_initial_points(spec),
        telemetry=sampler.summary(),
        error=error,
        **_fields(outcome),
        **{name: value for name, value in _fields(final).items() if name != "val_accuracy"},
    )


def final_fit(spec: RunSpec, split: Split, trainer: Trainer, values: dict, score_validation: bool) -> FinalFit:
    """Same for a tuned model and the baseline: fresh weights from the run's seed, train on train, test once."""
    keras.utils.set_random_seed(spec.weight_seed)
    clock = trainer.clock
    started = clock()
    trained = trainer.train(values, split.x_train, split.y_train, epochs=spec.epochs, batch_size=spec.batch_size)
    # The baseline has no search; its validation accuracy (after the last epoch, scored as every trial is) is the
    # target tuners must reach.
    val_accuracy = trainer.score(trained, split.x_val, split.y_val)[0] if score_validation else None
    retrain_seconds = clock() - started
    started = clock()
    accuracy, loss = trainer.score(trained, split.x_test, split.y_test)
    return FinalFit(
        test_accuracy=float(accuracy),
        test_loss=float(loss),
        val_accuracy=val_accuracy,
        retrain_seconds=retrain_seconds,
        retrain_epochs=trained.epochs,
        evaluate_seconds=clock() - started,
    )


def run_distributed(spec: RunSpec, split: Split, progress: Progress = print, **chief_options) -> RunResult:
    """run() with the search served by a chief to worker processes (fmbench.search.distributed.chief's options)."""
    from fmbench.search import distributed

    with distributed.chief(**chief_options) as serving:
        result = run(spec, split, progress, searcher=serving.search)
    return dataclasses.replace(result, workers=serving.workers)


def _keras_tuner() -> Searcher:
    from fmbench.search import keras_tuner

    return keras_tuner.search


def _optuna() -> Searcher:
    from fmbench.search import optuna

    return optuna.search


def _sklearn() -> Searcher:
    from fmbench.search import sklearn

    return sklearn.search


def _sklearn_trainer(spec: RunSpec) -> Trainer:
    from fmbench.search import sklearn

    return sklearn.SklearnTrainer(spec)


def _replay_trainer(spec: RunSpec) -> Trainer:
    from fmbench.replay import table
    from fmbench.replay.trainer import ReplayTrainer

    table.check_replayable(Path(spec.replay_table), spec.epochs, spec.batch_size)
    return ReplayTrainer.from_dir(Path(spec.replay_table), spec.weight_seed)


# The registry's names for searchers and trainers, and "replay" (RunSpec.trainer). Imported when used: Optuna,
# scikit-learn and the replay's surrogate load only for their own runs.
SEARCHERS: dict[str, Callable[[], Searcher]] = {"keras_tuner": _keras_tuner, "optuna": _optuna, "sklearn": _sklearn}
TRAINERS: dict[str, Callable[[RunSpec], Trainer]] = {
    "keras": KerasTrainer,
    "sklearn": _sklearn_trainer,
    "replay": _replay_trainer,
}
# A run's telemetry by RunSpec.trainer, on the trainer's clock: this machine's CPU and GPU where models train here;
# no figures where a replay looks them up (its lookups are not the training whose table seconds the rows record).
SAMPLERS: dict[str, Callable[[Callable[[], float]], telemetry.Sampler]] = {
    "keras": lambda clock: telemetry.Sampler(clock=clock),
    "replay": lambda clock: telemetry.Sampler(
        clock=clock, host=telemetry.NullHostReader(), gpu=telemetry.NullGpuReader()
    ),
}


def searcher_for(spec: RunSpec) -> Searcher:
    """The registry's searcher of the spec's tuner: a fixed model's proposes its one configuration."""
    runner = RUNNERS[spec.tuner]
    return base.fixed if runner.fixed else SEARCHERS[runner.backend]()


def trainer_for(spec: RunSpec) -> Trainer:
    """The registry's trainer of the spec's tuner, or the replay's where the spec replays it (RunSpec allows that only
    for tuners that train Keras models)."""
    return TRAINERS[RUNNERS[spec.tuner].trainer if spec.trainer == "keras" else spec.trainer](spec)


def _fields(record) -> dict:
    """A frozen record's fields by name, values as they are (dataclasses.asdict would turn trials into dicts)."""
    return {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}
