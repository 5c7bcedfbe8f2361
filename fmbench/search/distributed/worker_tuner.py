"""A worker's tuner: keras-tuner's own distributed mode. KERASTUNER_* in the environment makes its oracle an
OracleClient of the chief's; it runs the trials that oracle hands out on the spec's search space and appends each
trial's record to its file in the run directory for the chief to merge."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import keras_tuner as kt

from fmbench import backend, models, telemetry
from fmbench.budget import DeadlineCallback, SearchClock
from fmbench.models.trainer import KerasTrainer
from fmbench.search import keras_tuner as kt_backend
from fmbench.search.base import Progress
from fmbench.search.distributed import patches, rundir
from fmbench.spec import RunSpec

if TYPE_CHECKING:
    from fmbench.data import Split


class ScoreFromChief(kt.Tuner):
    """Sits between the recording mixin and kt.Tuner: the chief's oracle scores a trial in end_trial, and this
    process's copy of the trial never sees that score unless it asks."""

    def on_trial_end(self, trial: Any) -> None:
        super().on_trial_end(trial)
        if trial.status == "COMPLETED":
            scored = self.oracle.get_trial(trial.trial_id)
            trial.score, trial.status = scored.score, scored.status


class WritesRecords:
    """Outermost: after each trial, the records the recording mixin made go to this worker's trials file, as
    JSON lines the chief merges (even when ending the trial raised)."""

    def __init__(self, *args: Any, records_to: Path, worker_id: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.records_to, self.worker_id = records_to, worker_id

    def on_trial_end(self, trial: Any) -> None:
        count = len(self.records)
        try:
            super().on_trial_end(trial)
        finally:
            with open(self.records_to, "a") as handle:
                handle.writelines(
                    rundir.record_to_json(dataclasses.replace(r, worker=self.worker_id)) + "\n"
                    for r in self.records[count:]
                )


@functools.cache
def worker_tuner_class(tuner_class: type) -> type:
    """The backend's tuner class for the spec (fmbench.search.keras_tuner.make) with a worker's two mixins:
    records written outermost, the chief's score fetched just above kt.Tuner, below the recording mixin that
    reads it. Composed, not declared, because the backend picks the class per tuner; one class per backend class."""
    return type(f"Worker{tuner_class.__name__}", (WritesRecords, tuner_class, ScoreFromChief), {})


def run_trials(
    spec: RunSpec,
    split: Split,
    folder: Path,
    worker_id: str,
    host: str,
    port: int,
    timeout: float,
    progress: Progress,
) -> None:
    """The worker's search: trials from the chief's oracle at host:port until it says stop."""
    # Read by kt.Tuner.__init__: they make the tuner's oracle a client of the chief's.
    os.environ.update(KERASTUNER_TUNER_ID=worker_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))
    patches.require()
    patches.set_client_timeout(timeout)  # keras-tuner waits an hour on a silent chief
    backend.limit_gpu_memory()
    keras.utils.set_random_seed(spec.weight_seed)
    tuner = make_tuner(spec, folder, worker_id)
    rundir.ready_file(folder, worker_id).touch()
    info = rundir.wait_for_search(folder, "started_wall", timeout)
    offset = time.monotonic() - time.time()  # the chief's wall-clock times -> this process's monotonic clock
    started, active_values = info["started_wall"] + offset, models.space_of(spec).active_values
    with telemetry.Sampler() as sampler:
        tuner.start_recording(sampler, started, f"{spec.cell} {worker_id}", progress, active_values)
        callbacks = [DeadlineCallback(info["deadline_wall"] + offset)] if info["deadline_wall"] is not None else []
        kt_backend.search_split(tuner, spec, split, callbacks)


def make_tuner(spec: RunSpec, folder: Path, worker_id: str) -> Any:
    """The worker's tuner on the spec's search space; with KERASTUNER_* set, its oracle is the chief's."""
    tuner_class, oracle = kt_backend.make(spec)
    oracle.clock = SearchClock(spec.budget)  # never consulted: the chief's oracle decides
    space = models.space_of(spec)
    # overwrite=False: the chief made the project; a worker must not delete it under the others.
    tuner = worker_tuner_class(tuner_class)(
        oracle=oracle,
        hypermodel=space.build_model,
        trainer=KerasTrainer(spec),
        directory=str(folder),
        project_name="search",
        overwrite=False,
        records_to=rundir.trials_file(folder, worker_id),
        worker_id=worker_id,
    )
    patches.pause_when_idle(tuner.oracle)  # an OracleClient of the chief's oracle by now
    return tuner
