"""One search across processes with keras-tuner's chief/worker mode: a chief serves the oracle over gRPC.

The chief holds the one budgeted oracle, so trial and time budgets hold for the whole search. It serves
it with keras-tuner's OracleServicer, starts local workers (`python -m fmbench.search.distributed`), merges
the trial records they write to the shared run directory; its `search` goes into protocol.run, which then
retrains and tests as always.
A worker is keras-tuner's own distributed mode: KERASTUNER_* in its environment makes its oracle an
OracleClient of the chief.

Over 300 lines because the chief and the worker are the two halves of one protocol (the run directory's
files, heartbeats, the served oracle); split, each half would need the other's private details.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fmbench import atomic, placement
from fmbench.heartbeat import HEARTBEAT_TIMEOUT, Heartbeat, Heartbeats
from fmbench.registry import BASELINES, DISTRIBUTABLE
from fmbench.search.base import Progress, trial_line
from fmbench.spec import Budget, DataSizes, RunSpec, SpecError, TelemetrySummary, TrialRecord

if TYPE_CHECKING:
    from fmbench.data import Split

SEARCH_FILE = "search.json"  # the rendezvous: the chief's spec, then its clock once it serves
DEFAULT_STALL_TIMEOUT = 1800.0  # seconds without a trial starting or ending before the chief gives up
IDLE_PAUSE = 1.0  # a worker told to wait (IDLE) asks again after this; keras-tuner would ask at once
START_TIMEOUT = 600.0  # seconds a local worker may take to import TF and load its data
POLL = 0.2


class PortBusyError(SpecError):
    """The oracle address cannot be bound: in use, or not an address of this host."""


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); port 0 asks the OS for a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SpecError(
            f"oracle address {text!r} is not HOST:PORT (e.g. 0.0.0.0:8765 on the chief, chief-host:8765 on a worker)"
        )
    return host.strip("[]"), int(port)


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


def check_options(args: argparse.Namespace, spec: RunSpec) -> None:
    """The CLI's distributed options, checked before data or TF load (a SpecError exits 2 with one line)."""
    if spec.tuner in BASELINES:
        raise SpecError(f"--workers/--role need a tuner ({', '.join(DISTRIBUTABLE)}): the {spec.tuner} has no search")
    if spec.tuner not in DISTRIBUTABLE or spec.space != "mlp":
        raise SpecError(
            f"--workers/--role serve a keras-tuner oracle to Keras workers ({', '.join(DISTRIBUTABLE)}, "
            f"mlp space): {spec.cell} runs in one process; drop them"
        )
    if args.workers is not None and args.workers < 1:
        raise SpecError(f"--workers must be >= 1, got {args.workers}")
    if args.role is not None and args.run_dir is None:
        raise SpecError(f"--role {args.role} needs --run-dir: a folder the chief and its workers share")
    if args.role == "worker" and (args.oracle_address is None or args.workers is not None):
        raise SpecError(
            "--role worker needs --oracle-address CHIEF_HOST:PORT and takes no --workers (that is the chief's)"
        )
    if args.role is None and args.workers is None:
        raise SpecError("--oracle-address needs --role chief|worker or --workers N")
    if args.oracle_address is not None:
        parse_address(args.oracle_address)


@contextlib.contextmanager
def chief(
    workers: int = 2,
    address: str = "127.0.0.1:0",
    run_dir: str | None = None,
    data_dir: str | None = None,
    stall_timeout: float = DEFAULT_STALL_TIMEOUT,
) -> Iterator[_Chief]:
    """The chief, bound to its address (protocol.run_distributed passes its `search` to protocol.run); every
    worker stops on the way out."""
    host, port = parse_address(address)
    server, port = bind_server(host, port)  # before any row: a busy port is bad input, not a failed run
    serving = _Chief(server, host, port, workers, run_dir, data_dir, stall_timeout)
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


class _Chief:
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

    def search(self, spec: RunSpec, split: Split, workdir: str, sampler: object, progress: Progress) -> dict:
        """search.base.SearchFn: the search's fields of a RunResult, from every worker's records."""
        from keras_tuner.src import protos
        from keras_tuner.src.distribute.oracle_chief import OracleServicer

        from fmbench.budget import SearchClock
        from fmbench.models import mlp
        from fmbench.search import keras_tuner
        from fmbench.search.base import summarize_search

        self.folder = folder = Path(self.run_dir or workdir)  # local runs use protocol.run's fresh workdir
        folder.mkdir(parents=True, exist_ok=True)
        for stale in [
            *folder.glob("trials-*.jsonl"),
            *folder.glob("ready-*"),
            *folder.glob("alive-*"),
            folder / SEARCH_FILE,
        ]:
            stale.unlink(missing_ok=True)
        tuner_class, oracle = keras_tuner.make(spec)
        oracle.verbose = 0  # as search(verbose=0) sets it: our progress lines, not keras-tuner's tables
        _wait_while_trials_are_held(oracle)
        # As keras-tuner's chief: a tuner declares the search space and saves the project, then the oracle is served.
        tuner_class(
            oracle=oracle, hypermodel=mlp.build_model, directory=str(folder), project_name="search", overwrite=True
        ).save()
        info = {"spec": dataclasses.asdict(spec)}
        _write_json(folder / SEARCH_FILE, info)
        try:
            self.procs = {f"worker-{i}": self._launch(i) for i in range(self.n_local)}
            self._wait_ready()  # worker start-up (TF import, data load) is not search time
            servicer = OracleServicer(oracle)
            protos.get_service_grpc().add_OracleServicer_to_server(servicer, self.server)
            oracle.clock = clock = SearchClock(spec.budget)
            self.server.start()
            deadline = None if clock.deadline is None else time.time() + (clock.deadline - clock.started)
            _write_json(folder / SEARCH_FILE, {**info, "started_wall": time.time(), "deadline_wall": deadline})
            progress(
                f"[{spec.cell}] oracle serving on {self.host}:{self.port}; {self.n_local} local worker(s), "
                f"run dir {folder}"
            )
            tail = _Tail(folder)
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
        with open(self.folder / f"{name}.log", "w") as log:
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
        return f"{how} during the search ({_log_tail(self.folder / f'{name}.log')})"

    def _dead_worker(self) -> str:
        return next((f"{name} {self._died(name)}" for name in self.procs if self._died(name)), "")

    def _wait_ready(self) -> None:
        since = time.monotonic()
        while not all((self.folder / f"ready-{name}").exists() for name in self.procs):
            why = self._dead_worker() or (
                "a worker exited early" if any(p.poll() == 0 for p in self.procs.values()) else ""
            )
            if why or time.monotonic() - since > START_TIMEOUT:
                raise RuntimeError(f"local workers did not start: {why or f'not ready after {START_TIMEOUT:g}s'}")
            time.sleep(POLL)

    def _watch(
        self, oracle: Any, servicer: Any, tail: _Tail, report: Callable[[TrialRecord], None], note: Progress
    ) -> str:
        """Blocks until the search ends; returns '' or why it failed. keras-tuner's own loop (oracle_chief.
        start_server) waits forever for every tuner_id to ask again and every ongoing trial to end: a vanished
        worker does neither. So a worker that is gone (a local process that died, or no heartbeat for
        HEARTBEAT_TIMEOUT) hands its trial back to the oracle, and the search fails only when no worker remains
        or nothing moves for the stall timeout."""
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
                trial_id = return_trial(oracle, name)
                note(
                    f"{name} {why}; "
                    + (f"its trial {trial_id} goes back to the oracle" if trial_id else "it held no trial")
                )
            progress, idle, remote, failures = _snapshot(oracle, set(self.procs))
            if servicer.stop_triggered and idle:
                return ""
            if failures:
                return f"search stopped: {failures}"
            running = {name for name, proc in self.procs.items() if proc.poll() is None}
            if gone and not (running | beating) - set(gone):
                return f"no worker remains: {'; '.join(f'{name} {why}' for name, why in gone.items())}"
            if self.procs and not remote and all(p.poll() == 0 for p in self.procs.values()):
                return "every worker exited but the oracle still waits for a trial to end"
            if progress != marker:
                marker, moved = progress, time.monotonic()
            elif time.monotonic() - moved > self.stall_timeout:
                return f"no trial started or ended for {self.stall_timeout:g}s: a worker hangs or none is connected"
            time.sleep(POLL)

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


def _snapshot(oracle: Any, local: set[str]) -> tuple[tuple[int, int], bool, set[str], str]:
    """Under the oracle's lock (gRPC threads change it): a progress marker, idle as keras-tuner's exit_chief
    means it, the tuner_ids of no local worker, and the consecutive-failure error if any."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        try:
            oracle._check_consecutive_failures()  # a single-process search gets this error from its tuner
            failures = ""
        except RuntimeError as exc:
            failures = str(exc).strip().splitlines()[-1]
        idle = not oracle.ongoing_trials and not oracle.tuner_ids
        return (len(oracle.trials), len(oracle.end_order)), idle, set(oracle.tuner_ids) - local, failures


def _wait_while_trials_are_held(oracle: Any) -> None:
    """On the chief: once the budget is spent, a worker asking for a trial while another still holds one is
    told to wait (IDLE), not to stop, so that a trial handed back by a vanished worker still finds a runner."""
    from keras_tuner.src.engine.trial import TrialStatus

    populate = oracle.populate_space

    def populate_space(trial_id: str) -> dict:
        response = populate(trial_id)
        if response["status"] == TrialStatus.STOPPED and oracle.ongoing_trials:
            return {"status": TrialStatus.IDLE}
        return response

    oracle.populate_space = populate_space  # create_trial calls it under the oracle's lock


def return_trial(oracle: Any, tuner_id: str) -> str | None:
    """A vanished worker's trial goes back to the oracle: into its retry queue, as keras-tuner does with the
    ongoing trials of a reloaded search, so the next worker to ask runs it under the same id (it counts once
    in the budget). Returns that id, or None if the worker held no trial."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        oracle.tuner_ids.discard(tuner_id)
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        if trial is None:
            return None
        oracle._retry_queue.append(trial.trial_id)
        return trial.trial_id


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)  # the worker leads its own group: anything it started goes too
        except ProcessLookupError:
            pass


class _Tail:
    """Reads the workers' JSON-lines files as they grow; a line counts once it is whole."""

    def __init__(self, folder: Path):
        self.folder, self.offsets, self.records = folder, {}, []

    def poll(self) -> list[TrialRecord]:
        new = []
        for path in sorted(self.folder.glob("trials-*.jsonl")):
            with open(path, "rb") as handle:
                handle.seek(self.offsets.get(path, 0))
                data = handle.read()
            whole = data[: data.rfind(b"\n") + 1]
            self.offsets[path] = self.offsets.get(path, 0) + len(whole)
            new += [record_from_json(line) for line in whole.decode().splitlines() if line.strip()]
        self.records += new
        return new


def record_to_json(record: TrialRecord) -> str:
    return json.dumps(
        dataclasses.asdict(record), default=lambda value: value.item() if hasattr(value, "item") else str(value)
    )


def record_from_json(line: str) -> TrialRecord:
    fields = json.loads(line)
    return TrialRecord(**{**fields, "telemetry": TelemetrySummary(**fields["telemetry"])})


def _write_json(path: Path, payload: dict) -> None:
    atomic.write_text(path, json.dumps(payload))  # a worker never reads half a file


def _log_tail(path: Path) -> str:
    lines = (
        [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if path.exists()
        else []
    )
    return f"last log line: {lines[-1]}" if lines else f"{path} is empty"


def _wait_for(path: Path, key: str, timeout: float) -> dict:
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        try:
            info = json.loads(path.read_text())
            if key in info:
                return info
        except (OSError, ValueError):
            pass
        time.sleep(POLL)
    raise SpecError(f"{path}: no chief wrote '{key}' within {timeout:g}s; start the chief with the same --run-dir")


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
    fields = _wait_for(folder / SEARCH_FILE, "spec", timeout)["spec"]
    spec = RunSpec(**{**fields, "budget": Budget(**fields["budget"]), "sizes": DataSizes(**fields["sizes"])})
    if expected is not None and dataclasses.replace(expected, profile=spec.profile) != spec:
        raise SpecError(
            f"this worker's run ({expected.cell}, profile {expected.profile}) differs from the chief's "
            f"({spec.cell}, profile {spec.profile})"
        )
    with Heartbeat(folder / f"alive-{worker_id}"):  # from here on the chief can tell this worker vanished
        _run_trials(spec, folder, worker_id, host, port, data_dir, timeout, progress)
    return 0


def _run_trials(
    spec: RunSpec,
    folder: Path,
    worker_id: str,
    host: str,
    port: int,
    data_dir: str | None,
    timeout: float,
    progress: Progress,
) -> None:
    from fmbench import data

    split = data.load(data.resolve_data_dir(data_dir), spec.sizes)
    os.environ.update(KERASTUNER_TUNER_ID=worker_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))

    import keras
    import keras_tuner as kt
    from keras_tuner.src.distribute import oracle_client

    from fmbench import telemetry
    from fmbench.budget import DeadlineCallback, SearchClock
    from fmbench.models import mlp
    from fmbench.search import keras_tuner

    oracle_client.TIMEOUT = timeout  # keras-tuner waits an hour on a silent chief
    telemetry.enable_gpu_memory_growth()
    keras.utils.set_random_seed(spec.weight_seed)
    tuner_class, oracle = keras_tuner.make(spec)
    oracle.clock = SearchClock(spec.budget)  # never consulted: the chief's oracle decides
    records = folder / f"trials-{worker_id}.jsonl"

    class ScoreFromChief(kt.Tuner):
        """Sits between the recording mixin and kt.Tuner: the chief's oracle scores a trial in end_trial,
        and this process's copy of the trial never sees that score unless it asks."""

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            if trial.status == "COMPLETED":
                scored = self.oracle.get_trial(trial.trial_id)
                trial.score, trial.status = scored.score, scored.status

    class WorkerTuner(tuner_class, ScoreFromChief):  # the recording mixin, plus a line per trial for the chief to merge
        def on_trial_end(self, trial: Any) -> None:
            count = len(self.records)
            try:
                super().on_trial_end(trial)
            finally:
                with open(records, "a") as handle:
                    handle.writelines(
                        record_to_json(dataclasses.replace(r, worker=worker_id)) + "\n" for r in self.records[count:]
                    )

    # overwrite=False: the chief made the project; a worker must not delete it under the others.
    tuner = WorkerTuner(
        oracle=oracle, hypermodel=mlp.build_model, directory=str(folder), project_name="search", overwrite=False
    )
    ask = tuner.oracle.create_trial  # an OracleClient of the chief's oracle by now

    def create_trial(tuner_id: str) -> Any:
        trial = ask(tuner_id)
        if trial.status == kt.engine.trial.TrialStatus.IDLE:
            time.sleep(IDLE_PAUSE)  # told to wait: keras-tuner's loop would ask again at once, in a busy loop
        return trial

    tuner.oracle.create_trial = create_trial
    (folder / f"ready-{worker_id}").touch()
    info = _wait_for(folder / SEARCH_FILE, "started_wall", timeout)
    offset = time.monotonic() - time.time()  # the chief's wall-clock times -> this process's monotonic clock
    with telemetry.Sampler() as sampler:
        tuner.start_recording(
            sampler, info["started_wall"] + offset, f"{spec.cell} {worker_id}", progress, mlp.active_values
        )
        callbacks = [DeadlineCallback(info["deadline_wall"] + offset)] if info["deadline_wall"] is not None else []
        tuner.search(
            split.x_train,
            split.y_train,
            validation_data=(split.x_val, split.y_val),
            epochs=spec.epochs,
            batch_size=spec.batch_size,
            callbacks=callbacks,
            verbose=0,
        )


def main(argv: list[str] | None = None) -> int:
    """A local worker, as the chief starts it."""
    parser = argparse.ArgumentParser(prog="python -m fmbench.search.distributed", description=main.__doc__)
    for option in ("--run-dir", "--oracle-address", "--worker-id"):
        parser.add_argument(option, required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--timeout", type=float, default=DEFAULT_STALL_TIMEOUT)
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    return work(
        args.run_dir,
        args.oracle_address,
        args.worker_id,
        args.data_dir,
        timeout=args.timeout,
        progress=lambda line: print(line, flush=True),
    )


def _exit_with_parent(parent_pid: int) -> None:
    """A worker whose chief died, even by SIGKILL, exits instead of waiting on a dead oracle."""
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(3)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
