"""The run protocol: search under the budget -> retrain the best from scratch -> evaluate on test once.

The same protocol for every tuner and the baseline, so a difference between rows is the tuning. Which backend
searches comes from the registry (fmbench.registry); any failure becomes a row with its error, never an exception.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import os
import shutil
import tempfile
import time
import uuid

import keras

from fmbench import models, telemetry
from fmbench.data import Split
from fmbench.models import scoring, tf_session, training
from fmbench.registry import BASELINE, RUNNERS
from fmbench.search.base import Progress, SearchFailed, SearchFn, last_line, recorded_initial_points
from fmbench.spec import DataSizes, RunResult, RunSpec


def run(spec: RunSpec, split: Split, progress: Progress = print, search: SearchFn | None = None) -> RunResult:
    """One run of the protocol. Any failure becomes a row with its error, never an exception.

    `search` replaces the registry's in-process search (fmbench.search.distributed's chief passes its own);
    the retrain and the single test evaluation stay the same.
    """
    telemetry.enable_gpu_memory_growth()
    runner = RUNNERS[spec.tuner]
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    fields = dict(
        best_hyperparameters={},
        best_val_accuracy=None,
        test_accuracy=None,
        test_loss=None,
        search_seconds=0.0,
        retrain_seconds=0.0,
        evaluate_seconds=0.0,
        trials_completed=0,
        trials_failed=0,
        search_epochs=0,
        retrain_epochs=0,
        stopped_by="exhausted",
        time_overrun_seconds=None,
        trials=(),
        error="",
        trials_cut=0,
        brackets_completed=None,
    )
    # keras-tuner writes trial JSON every trial (and Hyperband a checkpoint): keep them in memory where we can.
    workdir = tempfile.mkdtemp(prefix=f"fmbench-{spec.cell}-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    with telemetry.Sampler() as sampler:
        try:
            keras.utils.set_random_seed(spec.weight_seed)
            if spec.tuner == BASELINE:
                fields["best_hyperparameters"] = dict(models.space_of(spec).BASELINE_HPS)
                fields["stopped_by"] = "trials"  # the baseline is a single fixed trial
            else:
                fields.update((search or backend(spec.tuner).search)(spec, split, workdir, sampler, progress))
            retrain = backend(spec.tuner).retrain_and_evaluate if runner.trainer == "sklearn" else retrain_and_evaluate
            retrain(spec, split, fields, progress)
        except SearchFailed as exc:
            fields.update(exc.partial, error=str(exc))
            progress(f"[{spec.cell}] ERROR {exc}")
        except Exception as exc:  # the row records it; the suite goes on
            fields.update(stopped_by="error", error=f"{type(exc).__name__}: {last_line(str(exc))}")
            progress(f"[{spec.cell}] ERROR {fields['error']}")
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            tf_session.clear_session()
    # The row records the images the run used: data.load caps sizes at what the data holds.
    used = DataSizes(train=len(split.y_train), val=len(split.y_val), test=len(split.y_test))
    return RunResult(
        spec=dataclasses.replace(spec, sizes=used),
        run_id=f"{spec.cell}-{uuid.uuid4().hex[:8]}",
        started_at=started_at,
        num_initial_points=recorded_initial_points(spec),
        telemetry=sampler.summary(),
        **fields,
    )


def run_distributed(spec: RunSpec, split: Split, progress: Progress = print, **chief_options) -> RunResult:
    """run() with the search served by a chief to worker processes (fmbench.search.distributed.chief's options)."""
    from fmbench.search import distributed

    with distributed.chief(**chief_options) as serving:
        result = run(spec, split, progress, search=serving.search)
    return dataclasses.replace(result, workers=serving.workers)


def backend(tuner: str):
    """The fmbench.search module of a tuner's backend, imported only when used (Optuna, scikit-learn)."""
    return importlib.import_module(f"fmbench.search.{RUNNERS[tuner].backend}")


def retrain_and_evaluate(spec: RunSpec, split: Split, fields: dict, progress: Progress) -> None:
    """Same protocol for a tuned model and the baseline: fresh weights, train on train, test once."""
    keras.utils.set_random_seed(spec.weight_seed)
    started = time.monotonic()
    model = models.space_of(spec).make_model(fields["best_hyperparameters"])
    history = training.fit(
        model, split.x_train, split.y_train, epochs=spec.epochs, batch_size=spec.batch_size, verbose=0
    )
    if spec.tuner == BASELINE:
        # The baseline has no search; its validation accuracy (after the last epoch, scored as every trial
        # is) is the target tuners must reach.
        fields["best_val_accuracy"] = scoring.score(model, split.x_val, split.y_val)[0]
    fields["retrain_seconds"] = time.monotonic() - started
    fields["retrain_epochs"] = len(history.epoch)
    started = time.monotonic()
    accuracy, loss = scoring.score(model, split.x_test, split.y_test)
    fields["evaluate_seconds"] = time.monotonic() - started
    fields["test_accuracy"], fields["test_loss"] = float(accuracy), float(loss)
    progress(f"[{spec.cell}] test accuracy {accuracy:.4f} (retrain {fields['retrain_seconds']:.1f}s)")
