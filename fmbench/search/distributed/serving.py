"""The chief: binds the oracle's address, declares the spec's space, starts local workers, serves the one budgeted
oracle over gRPC and watches that the search moves; its `search` is the searcher protocol.run_distributed passes
to protocol.run, which then retrains and tests as always."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmbench import placement
from fmbench.heartbeat import HEARTBEAT_TIMEOUT, Heartbeats
from fmbench.search.distributed import rundir
from fmbench.search.distributed.options import DEFAULT_STALL_TIMEOUT, PortBusyError, check_trainer, parse_address
from fmbench.spec import RunSpec, SearchOutcome, TrialRecord

if TYPE_CHECKING:  # the package loads no Keras on import: `python -m` picks the backend first (__main__)
    from fmbench import telemetry
    from fmbench.data import Split
    from fmbench.models.trainer import Trainer
    from fmbench.search.base import Progress

START_TIMEOUT = 600.0  # seconds a local worker may take to import TF and load its data


def bind_server(host: str, port: int) -> tuple[Any, int]:
    """A gRPC server bound to host:port but not started, and the port it got."""
    import grpc

    # grpc sets SO_REUSEPORT by default: a second chief would share the port silently and split the workers.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), options=[("grpc.so_reuseport", 0)])
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio >= 1.60 raises where older versions returned 0
        bound = 0
    if not bound:
        hint = (
            "omit the port (or give :0) to take a free one" if port else "check the host is an address of this machine"
        )
        raise PortBusyError(f"cannot bind the oracle to {host}:{port} (address in use or not local): {hint}")
    return server, bound


@contextlib.contextmanager
def chief(
    workers: int = 2,
    address: str = "127.0.0.1:0",
    run_dir: str | None = None,
    data_dir: str | None = None,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> Iterator[Chief]:
    """The chief, bound to its address (protocol.run_distributed passes its `search` to protocol.run); every
    worker stops on the way out."""
    host, port = parse_address(address)
    server, port = bind_server(host, port)  # before any row: a busy port is bad input, not a failed run
    serving = Chief(server, host, port, workers, run_dir, data_dir, stall_timeout)
    # SIGTERM unwinds like Ctrl-C, so the finally below stops the workers (handlers live in the main thread only).
    previous = (
        signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    )
    try:
        yield serving
    finally:
        serving.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def declare_space(spec: RunSpec, trainer: Trainer, folder: Path) -> Any:
    """The chief's budgeted oracle, ready to serve: as keras-tuner's chief does, a tuner declares the spec's
    search space (fmbench.models.space_of) and saves the project before the oracle is served."""
    from fmbench import models
    from fmbench.search import keras_tuner
    from fmbench.search.distributed import patches

    tuner_class, oracle = keras_tuner.make(spec)
    patches.require(oracle)  # a keras-tuner that lacks what the patches touch fails here, in one line
    oracle.verbose = 0  # as search(verbose=0) sets it: our progress lines, not keras-tuner's tables
    patches.hold_workers_while_trials_run(oracle)
    patches.release_lock_when_end_trial_raises(oracle)
    tuner_class(
        oracle=oracle,
        hypermodel=models.space_of(spec).build_model,
        trainer=trainer,
        directory=str(folder),
        project_name="search",
        overwrite=True,
    ).save()
    return oracle


class Chief:
    """Serves the oracle, owns the local worker processes, and watches that the search moves."""

    def __init__(
        self,
        server: Any,
        host: str,
        port: int,
        n_local: int,
        run_dir: str | None,
        data_dir: str | None,
        stall_timeout: float,
    ):
        self.server, self.host, self.port, self.n_local = server, host, port, n_local
        self.run_dir, self.data_dir, self.stall_timeout = run_dir, data_dir, stall_timeout
        self.procs: dict[str, subprocess.Popen] = {}
        self.folder = Path(run_dir or ".")
        self.workers = max(1, n_local)

    def search(
        self,
        spec: RunSpec,
        split: Split,
        trainer: Trainer,
        workdir: str,
        sampler: telemetry.Sampler,
        progress: Progress,
    ) -> SearchOutcome:
        """search.base.Searcher: the outcome of the search, from every worker's records. The trainer declares
        the space here; the workers train with their own (the chief trains only the final fit)."""
        from fmbench.budget import SearchClock
        from fmbench.search.base import summarize_search, trial_line
        from fmbench.search.distributed import patches

        check_trainer(spec)  # before any worker starts to train for real what the spec replays
        self.folder = folder = Path(self.run_dir or workdir)  # local runs use protocol.run's fresh workdir
        folder.mkdir(parents=True, exist_ok=True)
        rundir.clear(folder)
        oracle = declare_space(spec, trainer, folder)
        info = {"spec": dataclasses.asdict(spec)}
        rundir.write_search(folder, info)
        try:
            self.procs = {f"worker-{i}": self._launch(i) for i in range(self.n_local)}
            self._wait_ready()  # worker start-up (TF import, data load) is not search time
            servicer = patches.serve(oracle, self.server)
            oracle.clock = clock = SearchClock(spec.budget)
            self.server.start()
            deadline = None if clock.deadline is None else time.time() + (clock.deadline - clock.started)
            rundir.write_search(folder, {**info, "started_wall": time.time(), "deadline_wall": deadline})
            progress(
                f"[{spec.cell}] oracle serving on {self.host}:{self.port}; {self.n_local} local worker(s), "
                f"run dir {folder}"
            )
            tail = rundir.RecordTail(folder)
            error = self._watch(
                oracle,
                servicer,
                tail,
                lambda r: progress(trial_line(spec.cell, r, clock.elapsed())),
                lambda line: progress(f"[{spec.cell}] {line}"),
            )
            tail.poll()  # lines written after the last look
            # Who proposed each trial is the chief's oracle's to say: a worker only asked it.
            records = tuple(
                dataclasses.replace(r, proposed_by=oracle.proposed_by.get(r.trial_id, ""))
                for r in sorted(tail.records, key=lambda r: r.started_seconds)
            )
            self.workers = max(self.n_local, len({r.worker for r in records}), 1)
            return summarize_search(spec, clock, records, error)
        finally:
            self.stop()  # the retrain runs on the chief alone

    def _launch(self, index: int) -> subprocess.Popen:
        name, env = f"worker-{index}", dict(os.environ, PYTHONUNBUFFERED="1")
        gpus = placement.visible_gpu_ids()
        if gpus:  # one GPU per worker, round robin
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        connect = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        cmd = [
            sys.executable,
            "-m",
            "fmbench.search.distributed",
            "--run-dir",
            str(self.folder),
            "--worker-id",
            name,
            "--oracle-address",
            f"{connect}:{self.port}",
            "--parent-pid",
            str(os.getpid()),
            "--timeout",
            str(max(self.stall_timeout, START_TIMEOUT)),
        ]
        with open(rundir.log_file(self.folder, name), "w") as log:
            # A session of its own: Ctrl-C reaches the chief alone, which then stops every worker group.
            return subprocess.Popen(
                cmd + (["--data-dir", str(self.data_dir)] if self.data_dir else []),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def _died(self, name: str) -> str:
        """Why a local worker is gone: empty while it runs or after a clean exit."""
        code = self.procs[name].poll()
        if code in (None, 0):
            return ""
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        return f"{how} during the search ({rundir.log_tail(rundir.log_file(self.folder, name))})"

    def _dead_worker(self) -> str:
        return next((f"{name} {self._died(name)}" for name in self.procs if self._died(name)), "")

    def _wait_ready(self) -> None:
        since = time.monotonic()
        while not all(rundir.ready_file(self.folder, name).exists() for name in self.procs):
            why = self._dead_worker() or (
                "a worker exited early" if any(p.poll() == 0 for p in self.procs.values()) else ""
            )
            if why or time.monotonic() - since > START_TIMEOUT:
                raise RuntimeError(f"local workers did not start: {why or f'not ready after {START_TIMEOUT:g}s'}")
            time.sleep(rundir.POLL)

    def _watch(
        self,
        oracle: Any,
        servicer: Any,
        tail: rundir.RecordTail,
        report: Callable[[TrialRecord], None],
        note: Progress,
    ) -> str:
        """Blocks until the search ends; returns '' or why it failed. keras-tuner's own loop (oracle_chief.
        start_server) waits forever for every tuner_id to ask again and every ongoing trial to end: a vanished
        worker does neither. So a worker that is gone (a local process that died, or no heartbeat for
        HEARTBEAT_TIMEOUT) hands its trial back to the oracle, and the search fails only when no worker remains
        or nothing moves for the stall timeout."""
        from fmbench.search.distributed import patches

        marker, moved = None, time.monotonic()
        heartbeats, gone = Heartbeats(self.folder), {}
        while True:
            for record in tail.poll():
                report(record)
            beating, stale = heartbeats.poll()
            for name, why in self._newly_gone(stale, gone):
                gone[name] = why
                if name in self.procs:  # a silent local worker (stopped, hung) must not come back with the trial
                    _signal_group(self.procs[name], signal.SIGKILL)
                trial_id = patches.return_trial(oracle, name)
                note(
                    f"{name} {why}; "
                    + (f"its trial {trial_id} goes back to the oracle" if trial_id else "it held no trial")
                )
            state = patches.snapshot(oracle, set(self.procs))
            if patches.stop_requested(servicer) and state.idle:
                return ""
            if state.failure:
                return f"search stopped: {state.failure}"
            running = {name for name, proc in self.procs.items() if proc.poll() is None}
            if gone and not (running | beating) - set(gone):
                return f"no worker remains: {'; '.join(f'{name} {why}' for name, why in gone.items())}"
            if self.procs and not state.remote and all(p.poll() == 0 for p in self.procs.values()):
                return "every worker exited but the oracle still waits for a trial to end"
            if state.progress != marker:
                marker, moved = state.progress, time.monotonic()
            elif time.monotonic() - moved > self.stall_timeout:
                return f"no trial started or ended for {self.stall_timeout:g}s: a worker hangs or none is connected"
            time.sleep(rundir.POLL)

    def _newly_gone(self, stale: set[str], gone: dict[str, str]) -> list[tuple[str, str]]:
        """(worker, why) for each worker lost since the last look: a local process that died, or a silent one."""
        died = {name: self._died(name) for name in self.procs if name not in gone and self._died(name)}
        silent = sorted(stale - set(gone) - set(died))
        return [*died.items(), *((name, f"sent no heartbeat for {HEARTBEAT_TIMEOUT:g}s") for name in silent)]

    def stop(self) -> None:
        """SIGTERM to every worker's process group, SIGKILL to what is left after 5 s; stop serving. Idempotent."""
        for proc in self.procs.values():
            _signal_group(proc, signal.SIGTERM)
            _signal_group(proc, signal.SIGCONT)  # a stopped (hung) worker acts on SIGTERM only once continued
        ends = time.monotonic() + 5
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, ends - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.server.stop(grace=None)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)  # the worker leads its own group: anything it started goes too
        except ProcessLookupError:
            pass
