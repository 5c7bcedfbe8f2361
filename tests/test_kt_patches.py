"""The keras-tuner private names fmbench's distributed search patches (fmbench/search/distributed/patches.py): each
one is still in the installed keras-tuner, with the signature the patch calls, and each patch still does its job
on a real oracle. A keras-tuner upgrade that breaks one fails here, naming the version and the name."""

from __future__ import annotations

import re

import keras_tuner as kt
import pytest

from fmbench.budget import SearchClock
from fmbench.search import keras_tuner as backend
from fmbench.search.distributed import patches
from fmbench.spec import Budget

VERSION = patches.version()
# keras-tuner's private modules are imported in the tests that use them, so that a keras-tuner without them fails
# those tests and the name checks below, each with its own message, rather than this whole file at import.


def _oracle(tmp_path, max_trials: int, **kwargs):
    """The chief's oracle (budgeted, patched as serving.declare_space patches it) on a one-knob space."""
    oracle = backend.RandomOracle(objective=backend.OBJECTIVE, max_trials=None, seed=1, **kwargs)
    oracle._set_project_dir(str(tmp_path), "search")  # what a tuner does; create_trial saves the trial there
    oracle.hyperparameters.Int("units", 32, 512, step=32)
    oracle.clock = SearchClock(Budget(max_trials=max_trials))
    oracle.verbose = 0
    patches.hold_workers_while_trials_run(oracle)
    patches.release_lock_when_end_trial_raises(oracle)
    return oracle


# --- the names, present and callable as the patches call them -------------------------------------------------------


@pytest.mark.parametrize("target", patches.TARGETS, ids=lambda target: target.label)
def test_each_patched_name_is_in_the_installed_keras_tuner(target):
    assert not patches.problem(target), f"{patches.problem(target)}; used by {target.used_by}"


@pytest.mark.parametrize(("name", "kind", "used_by"), patches.ORACLE_ATTRIBUTES)
def test_each_oracle_attribute_the_patches_read_is_set_by_keras_tuner(name, kind, used_by):
    oracle = kt.oracles.RandomSearchOracle(objective=backend.OBJECTIVE, max_trials=1, seed=1)
    problem = patches.attribute_problem(oracle, name, kind)
    assert not problem, f"{problem}; used by {used_by}"


@pytest.mark.parametrize(("name", "kind", "used_by"), patches.SERVICER_ATTRIBUTES)
def test_each_servicer_attribute_the_patches_read_is_set_by_keras_tuner(name, kind, used_by):
    from keras_tuner.src.distribute import oracle_chief

    servicer = oracle_chief.OracleServicer(kt.oracles.RandomSearchOracle(objective=backend.OBJECTIVE))
    problem = patches.attribute_problem(servicer, name, kind)
    assert not problem, f"{problem}; used by {used_by}"


def test_the_installed_keras_tuner_is_supported(tmp_path):
    patches.require(_oracle(tmp_path, max_trials=1))


# --- the runtime check's message -------------------------------------------------------------------------------------


def test_a_missing_name_is_one_line_naming_the_version_the_name_and_the_fix(monkeypatch):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.delattr(oracle_client, "TIMEOUT")
    with pytest.raises(patches.KerasTunerMismatch) as raised:
        patches.require()
    message = str(raised.value)
    assert message.startswith(
        f"keras-tuner {VERSION} no longer has oracle_client.TIMEOUT: fmbench's distributed search supports "
        "keras-tuner 1.4.x"
    )
    assert "\n" not in message and "keras-tuner>=1.4,<1.5" in message


def test_a_changed_signature_names_how_the_patch_calls_it(monkeypatch):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client.OracleClient, "create_trial", lambda self: None)
    with pytest.raises(patches.KerasTunerMismatch, match=re.escape("called as (self, tuner_id)")):
        patches.require()


def test_a_missing_oracle_attribute_is_named(tmp_path):
    oracle = _oracle(tmp_path, max_trials=1)
    del oracle._retry_queue
    with pytest.raises(
        patches.KerasTunerMismatch, match=f"keras-tuner {re.escape(VERSION)} no longer sets .*_retry_queue"
    ):
        patches.require(oracle)


# --- what each patch does, on a real oracle ------------------------------------------------------------------------


def test_a_vanished_workers_trial_goes_to_the_next_worker_and_counts_once(tmp_path):
    oracle = _oracle(tmp_path, max_trials=1)
    held = oracle.create_trial("worker-1")
    # the budget is spent but worker-1 still holds a trial: worker-0 is told to wait, not to stop
    assert oracle.create_trial("worker-0").status == "IDLE" and "worker-0" in oracle.tuner_ids
    assert patches.return_trial(oracle, "worker-1") == held.trial_id
    assert "worker-1" not in oracle.tuner_ids and patches.return_trial(oracle, "worker-1") is None
    rerun = oracle.create_trial("worker-0")
    assert (rerun.trial_id, rerun.status, rerun.hyperparameters.values) == (
        held.trial_id,
        "RUNNING",
        held.hyperparameters.values,
    )
    assert len(oracle.trials) == 1  # the same trial, not a new one: the budget counts it once
    oracle.update_trial(rerun.trial_id, {"val_accuracy": 0.5})
    rerun.status = "COMPLETED"
    oracle.end_trial(rerun)
    assert oracle.create_trial("worker-0").status == "STOPPED" and not oracle.tuner_ids and not oracle.ongoing_trials


def test_the_snapshot_sees_progress_remote_workers_idleness_and_failures(tmp_path):
    oracle = _oracle(tmp_path, max_trials=5, max_consecutive_failed_trials=1)
    assert patches.snapshot(oracle, set()) == patches.OracleState((0, 0), True, frozenset(), "")
    oracle.create_trial("worker-0")
    failing = oracle.create_trial("host-b-1")
    state = patches.snapshot(oracle, {"worker-0"})
    assert (state.progress, state.idle, state.remote, state.failure) == ((2, 0), False, {"host-b-1"}, "")
    failing.status, failing.message = "FAILED", "Traceback ...\nValueError: the trial's own error"
    with pytest.raises(RuntimeError, match="consecutive failures"):
        oracle.end_trial(failing)  # the gRPC thread's call fails; the chief learns it from the snapshot
    from keras_tuner.src.engine.oracle import LOCKS

    # keras-tuner's @synchronized alone would keep the lock: the snapshot would wait for ever (a timeout here).
    assert LOCKS[oracle].acquire(timeout=5), "end_trial's error left the oracle's lock held"
    LOCKS[oracle].release()
    assert patches.snapshot(oracle, {"worker-0"}).failure == "ValueError: the trial's own error"


class _Client:
    """An OracleClient stand-in that answers IDLE once, then a running trial."""

    def __init__(self) -> None:
        self.answers = ["IDLE", "RUNNING"]

    def create_trial(self, tuner_id: str) -> kt.engine.trial.Trial:
        return kt.engine.trial.Trial(kt.HyperParameters(), trial_id="00", status=self.answers.pop(0))


def test_a_worker_told_to_wait_pauses_before_it_asks_again():
    client, slept = _Client(), []
    patches.pause_when_idle(client, pause=0.5, sleep=slept.append)
    assert client.create_trial("worker-0").status == "IDLE" and slept == [0.5]
    assert client.create_trial("worker-0").status == "RUNNING" and slept == [0.5]


def test_the_client_timeout_is_the_one_set(monkeypatch):
    from keras_tuner.src.distribute import oracle_client

    monkeypatch.setattr(oracle_client, "TIMEOUT", oracle_client.TIMEOUT)  # restored after the test
    patches.set_client_timeout(42.0)
    assert oracle_client.TIMEOUT == 42.0


def test_a_served_oracle_has_not_asked_anyone_to_stop(tmp_path):
    from fmbench.search.distributed import serving

    server, _ = serving.bind_server("127.0.0.1", 0)
    try:
        assert patches.stop_requested(patches.serve(_oracle(tmp_path, max_trials=1), server)) is False
    finally:
        server.stop(None)
