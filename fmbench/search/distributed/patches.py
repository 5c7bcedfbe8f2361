"""Every keras-tuner private name the distributed search relies on, each in one named patch, in this one module.

keras-tuner's chief/worker mode is public (the KERASTUNER_* environment variables), but what fmbench adds to it
reaches into keras-tuner 1.4's internals. The patches, each a function below with why it is needed:

  chief   hold_workers_while_trials_run       Oracle.populate_space, replaced on the served oracle
          release_lock_when_end_trial_raises  Oracle.end_trial wrapped; LOCKS, THREADS
          return_trial                        LOCKS, Oracle._retry_queue, ongoing_trials, tuner_ids
          snapshot                            LOCKS, Oracle._check_consecutive_failures, trials, end_order
          serve, stop_requested               oracle_chief.OracleServicer, protos, its stop_triggered
  worker  set_client_timeout                  oracle_client.TIMEOUT
          pause_when_idle                     OracleClient.create_trial, replaced on the worker's client
          (worker_tuner.ScoreFromChief calls OracleClient.get_trial)

An upgrade that renames one of these would change how a search behaves without an error, so TARGETS,
ORACLE_ATTRIBUTES and SERVICER_ATTRIBUTES list them: `require` checks them where the chief and a worker first use
keras-tuner (a one-line KerasTunerMismatch naming the version and the name), and tests/test_kt_patches.py
checks each one by name.
"""

from __future__ import annotations

import importlib
import inspect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

SUPPORTED = "1.4.x"  # the keras-tuner versions these patches were written against (pyproject pins >=1.4,<1.5)
IDLE_PAUSE = 1.0  # a worker told to wait (IDLE) asks again after this; keras-tuner would ask at once

ORACLE = "keras_tuner.src.engine.oracle"
TRIAL = "keras_tuner.src.engine.trial"
CLIENT = "keras_tuner.src.distribute.oracle_client"
CHIEF = "keras_tuner.src.distribute.oracle_chief"
PROTOS = "keras_tuner.src.protos"


class KerasTunerMismatch(RuntimeError):
    """The installed keras-tuner lacks a name (or a signature) one of these patches relies on."""


@dataclass(frozen=True)
class Target:
    """A keras-tuner name a patch relies on: `path` inside `module` ('f()' calls f), with the positional
    arguments the patch passes when it calls it (None: not called)."""

    module: str
    path: str
    used_by: str
    args: tuple[str, ...] | None = None

    @property
    def label(self) -> str:
        return f"{self.module.rpartition('.')[2]}.{self.path}"


TARGETS = (
    Target(ORACLE, "LOCKS", "return_trial, snapshot, release_lock_when_end_trial_raises: each oracle's lock"),
    Target(ORACLE, "THREADS", "release_lock_when_end_trial_raises: the thread holding each oracle's lock"),
    Target(ORACLE, "Oracle.end_trial", "release_lock_when_end_trial_raises", ("self", "trial")),
    Target(ORACLE, "Oracle.create_trial", "hold_workers_while_trials_run, return_trial", ("self", "tuner_id")),
    Target(ORACLE, "Oracle.populate_space", "hold_workers_while_trials_run", ("self", "trial_id")),
    Target(ORACLE, "Oracle._check_consecutive_failures", "snapshot", ("self",)),
    Target(TRIAL, "TrialStatus.IDLE", "hold_workers_while_trials_run, pause_when_idle"),
    Target(TRIAL, "TrialStatus.STOPPED", "hold_workers_while_trials_run"),
    Target(CLIENT, "TIMEOUT", "set_client_timeout"),
    Target(CLIENT, "OracleClient.create_trial", "pause_when_idle", ("self", "tuner_id")),
    Target(CLIENT, "OracleClient.get_trial", "worker_tuner.ScoreFromChief", ("self", "trial_id")),
    Target(CHIEF, "OracleServicer", "serve", ("oracle",)),
    Target(PROTOS, "get_service_grpc().add_OracleServicer_to_server", "serve", ("servicer", "server")),
)
# Set in Oracle.__init__, so only an oracle (or a servicer) can show them: (attribute, type, used by).
ORACLE_ATTRIBUTES = (
    ("trials", dict, "snapshot"),
    ("ongoing_trials", dict, "hold_workers_while_trials_run, return_trial, snapshot"),
    ("tuner_ids", set, "return_trial, snapshot"),
    ("end_order", list, "snapshot"),
    ("_retry_queue", list, "return_trial: create_trial hands out its trials first"),
)
SERVICER_ATTRIBUTES = (("stop_triggered", bool, "stop_requested"),)


def version() -> str:
    try:
        return metadata.version("keras-tuner")
    except metadata.PackageNotFoundError:
        return "(not installed)"


def _fix(what: str) -> str:
    return (
        f"keras-tuner {version()} {what}: fmbench's distributed search supports keras-tuner {SUPPORTED} "
        "(pip install 'keras-tuner>=1.4,<1.5'; its patches are in fmbench/search/distributed/patches.py)"
    )


def problem(target: Target) -> str:
    """'' if the installed keras-tuner has the target and takes the arguments the patch passes; else why not."""
    try:
        value: Any = importlib.import_module(target.module)
        for part in target.path.split("."):
            value = getattr(value, part.removesuffix("()"))
            if part.endswith("()"):
                value = value()
    except (ImportError, AttributeError):
        return _fix(f"no longer has {target.label}")
    if target.args is not None:
        try:
            inspect.signature(value).bind(*target.args)
        except TypeError:
            return _fix(f"changed {target.label}{inspect.signature(value)}, called as ({', '.join(target.args)})")
        except ValueError:  # no signature to read (a builtin): calling it is the test
            pass
    return ""


def attribute_problem(owner: object, name: str, kind: type) -> str:
    """'' if `owner` (an oracle or a servicer) has the attribute a patch reads, of the type it expects."""
    if not isinstance(getattr(owner, name, None), kind):
        return _fix(f"no longer sets {type(owner).__name__}.{name} (a {kind.__name__})")
    return ""


def require(oracle: object | None = None) -> None:
    """Raises KerasTunerMismatch, one line naming the version and the name, unless every patch can apply; with
    an oracle, checks its attributes too. Called where the chief and a worker first use keras-tuner."""
    found = [problem(target) for target in TARGETS]
    if oracle is not None:
        found += [attribute_problem(oracle, name, kind) for name, kind, _ in ORACLE_ATTRIBUTES]
    _raise_first(found)


def _raise_first(problems: list[str]) -> None:
    first = next((text for text in problems if text), "")
    if first:
        raise KerasTunerMismatch(first)


def hold_workers_while_trials_run(oracle: Any) -> None:
    """On the chief: once the budget is spent, a worker asking for a trial while another still holds one is told
    to wait (IDLE), not to stop, so that a trial handed back by a vanished worker (return_trial) still finds a
    runner. keras-tuner has no hook for this: `Oracle.create_trial` calls `self.populate_space` under the
    oracle's lock and drops a worker told STOPPED from `tuner_ids` for good, so this oracle's populate_space is
    replaced with one that answers IDLE while `ongoing_trials` is not empty."""
    from keras_tuner.src.engine.trial import TrialStatus

    populate = oracle.populate_space

    def populate_space(trial_id: str) -> dict:
        response = populate(trial_id)
        if response["status"] == TrialStatus.STOPPED and oracle.ongoing_trials:
            return {"status": TrialStatus.IDLE}
        return response

    oracle.populate_space = populate_space


def release_lock_when_end_trial_raises(oracle: Any) -> None:
    """On the chief: keras-tuner's @synchronized releases an oracle's lock only when the method returns, so
    end_trial raising the consecutive-failure error (in the gRPC thread) would leave `LOCKS[oracle]` held and the
    chief's watch loop (snapshot) waiting on it for ever. This oracle's end_trial releases the lock it took, as
    @synchronized would have, before the error goes on to the worker."""
    from keras_tuner.src.engine.oracle import LOCKS, THREADS

    end_trial = oracle.end_trial

    def end_trial_releasing(trial: Any) -> Any:
        thread = threading.current_thread().name
        outer = THREADS[oracle] == thread  # called under this thread's own lock: the outer call releases it
        try:
            return end_trial(trial)
        except BaseException:
            if not outer and THREADS[oracle] == thread:
                THREADS[oracle] = None
                LOCKS[oracle].release()
            raise

    oracle.end_trial = end_trial_releasing


def return_trial(oracle: Any, tuner_id: str) -> str | None:
    """A vanished worker's trial goes back to the oracle: into its private `_retry_queue`, as keras-tuner does
    with the ongoing trials of a reloaded search, so the next worker to ask runs it under the same id (it counts
    once in the budget). keras-tuner itself never gives up on a worker. Returns that id, or None if the worker
    held no trial."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:  # gRPC threads change these under the same lock
        oracle.tuner_ids.discard(tuner_id)
        trial = oracle.ongoing_trials.pop(tuner_id, None)
        if trial is None:
            return None
        oracle._retry_queue.append(trial.trial_id)
        return trial.trial_id


@dataclass(frozen=True)
class OracleState:
    """What the chief's watch loop reads from the served oracle, read at one instant."""

    progress: tuple[int, int]  # trials started, trials ended: a change means the search moves
    idle: bool  # no trial runs and no worker waits: keras-tuner's exit_chief condition
    remote: frozenset[str]  # tuner ids of workers the chief did not start
    failure: str  # keras-tuner's consecutive-failure error, or ''


def snapshot(oracle: Any, local: set[str]) -> OracleState:
    """The oracle's state under its lock. keras-tuner's chief learns of consecutive failures only from a tuner's
    own loop, which the chief does not run, so its private `_check_consecutive_failures` is called here."""
    from keras_tuner.src.engine.oracle import LOCKS

    with LOCKS[oracle]:
        try:
            oracle._check_consecutive_failures()  # a single-process search gets this error from its tuner
            failure = ""
        except RuntimeError as exc:
            failure = str(exc).strip().splitlines()[-1]
        idle = not oracle.ongoing_trials and not oracle.tuner_ids
        remote = frozenset(set(oracle.tuner_ids) - local)
        return OracleState((len(oracle.trials), len(oracle.end_order)), idle, remote, failure)


def serve(oracle: Any, server: Any) -> Any:
    """Adds keras-tuner's OracleServicer for `oracle` to a gRPC server and returns it. keras-tuner's own
    `oracle_chief.start_server` builds its server from KERASTUNER_* and blocks until every worker is done; the
    chief needs its own bound server (a busy port is bad input) and its own watch loop."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    servicer = OracleServicer(oracle)
    _raise_first([attribute_problem(servicer, name, kind) for name, kind, _ in SERVICER_ATTRIBUTES])
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    return servicer


def stop_requested(servicer: Any) -> bool:
    """Whether the oracle has told some worker STOPPED: the servicer's own flag, as `start_server` reads it."""
    return bool(servicer.stop_triggered)


def set_client_timeout(seconds: float) -> None:
    """How long a worker's gRPC calls wait for the chief: keras-tuner's module-level `oracle_client.TIMEOUT`,
    an hour, read at every call; the worker's stall timeout is the limit the run was given."""
    from keras_tuner.src.distribute import oracle_client

    oracle_client.TIMEOUT = seconds


def pause_when_idle(client: Any, pause: float = IDLE_PAUSE, sleep: Callable[[float], None] = time.sleep) -> None:
    """On a worker: a trial answered IDLE is asked for again after `pause` seconds. keras-tuner's search loop asks
    again at once, a busy loop of gRPC calls while the chief holds workers (hold_workers_while_trials_run); the
    worker's OracleClient (keras-tuner's private class) has its create_trial replaced on this instance."""
    from keras_tuner.src.engine.trial import TrialStatus

    ask = client.create_trial

    def create_trial(tuner_id: str) -> Any:
        trial = ask(tuner_id)
        if trial.status == TrialStatus.IDLE:
            sleep(pause)
        return trial

    client.create_trial = create_trial
