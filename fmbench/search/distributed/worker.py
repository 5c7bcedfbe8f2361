"""A worker process: it takes the chief's spec from the run directory, checks it is the run it was started for,
beats while it runs, loads its data and runs the trials the chief's oracle hands out (worker_tuner, where Keras
and keras-tuner load) until the oracle says stop."""

from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

from fmbench.heartbeat import Heartbeat
from fmbench.search.distributed import rundir
from fmbench.search.distributed.options import DEFAULT_STALL_TIMEOUT, parse_address
from fmbench.spec import RunSpec, SpecError

if TYPE_CHECKING:
    from fmbench.search.base import Progress


def work(
    run_dir: str,
    address: str,
    worker_id: str | None = None,
    data_dir: str | None = None,
    expected: RunSpec | None = None,
    timeout: float = DEFAULT_STALL_TIMEOUT,
    progress: Progress = print,
) -> int:
    """A worker: runs the trials the chief's oracle hands out until it says stop; one record line per trial."""
    host, port = parse_address(address)
    worker_id = worker_id or f"worker-{platform.node()}-{os.getpid()}"
    if "chief" in worker_id:
        raise SpecError(f"worker id {worker_id!r} must not contain 'chief' (keras-tuner would take it for the chief)")
    folder = Path(run_dir)
    spec = rundir.spec_from_json(rundir.wait_for_search(folder, "spec", timeout)["spec"])
    if expected is not None and dataclasses.replace(expected, profile=spec.profile) != spec:
        raise SpecError(
            f"this worker's run ({expected.cell}, profile {expected.profile}) differs from the chief's "
            f"({spec.cell}, profile {spec.profile})"
        )
    with Heartbeat(rundir.alive_file(folder, worker_id)):  # from here on the chief can tell this worker vanished
        from fmbench import data

        split = data.load(data.resolve_data_dir(data_dir), spec.sizes)
        # Keras and keras-tuner load here, once the data is known to be good and the backend chosen (__main__).
        from fmbench.search.distributed import worker_tuner

        worker_tuner.run_trials(spec, split, folder, worker_id, host, port, timeout, progress)
    return 0
