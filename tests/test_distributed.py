"""Distributed search: port binding, record files, CLI options, the served space (fast); chief + 2 local workers on
loopback (e2e). The keras-tuner internals it patches are tested in test_kt_patches.py."""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from fmbench import heartbeat, protocol
from fmbench.registry import DISTRIBUTABLE, RUNNERS
from fmbench.search import distributed
from fmbench.search.distributed import options, rundir, worker_tuner
from fmbench.spec import Budget, DataSizes, RunSpec, SpecError, TelemetrySummary, TrialRecord


def _spec(max_trials: int, split) -> RunSpec:
    """The sizes of the conftest's tiny split: the workers load the same subset with them."""
    sizes = DataSizes(train=len(split.y_train), val=len(split.y_val), test=len(split.y_test))
    return RunSpec(
        tuner="random",
        seed=1,
        budget=Budget(max_trials=max_trials),
        sizes=sizes,
        epochs=1,
        batch_size=64,
        profile="test",
    )


def _worker_processes() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "fmbench.search.distributed" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


# --- fast: no training -------------------------------------------------------------------------


def test_busy_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(distributed.PortBusyError, match=f"127.0.0.1:{port}.*free one"):
            distributed.bind_server("127.0.0.1", port)


def test_port_zero_takes_a_free_port_that_a_second_chief_cannot_share():
    server, port = distributed.bind_server("127.0.0.1", 0)
    try:
        assert port > 0
        # grpc's default SO_REUSEPORT would let a second server bind it silently; ours refuses.
        with pytest.raises(distributed.PortBusyError):
            distributed.bind_server("127.0.0.1", port)
    finally:
        server.stop(None)


@pytest.mark.parametrize("text", ["8765", "host:", ":8765", "host:port", "host:70000"])
def test_bad_oracle_address(text):
    with pytest.raises(SpecError, match="HOST:PORT"):
        distributed.parse_address(text)


def test_parse_address():
    assert distributed.parse_address("0.0.0.0:8765") == ("0.0.0.0", 8765)
    assert distributed.parse_address("[::1]:0") == ("::1", 0)


def test_records_round_trip_and_partial_lines_wait(tmp_path):
    record = TrialRecord(
        "03", {"units": 64}, "COMPLETED", 0.8, 2, 1.5, 3.0, telemetry=TelemetrySummary(samples=2), worker="worker-1"
    )
    path = tmp_path / "trials-worker-1.jsonl"
    line = rundir.record_to_json(record) + "\n"
    path.write_text(line + line[:10])  # a second record half written
    tail = rundir.RecordTail(tmp_path)
    assert tail.poll() == [record]
    with open(path, "a") as handle:
        handle.write(line[10:])
    assert tail.poll() == [record] and len(tail.records) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--workers", "0"],
        ["--role", "chief"],  # no --run-dir
        ["--role", "worker", "--run-dir", "x"],  # no --oracle-address
        ["--oracle-address", "127.0.0.1:1"],  # neither role nor workers
        ["--workers", "2", "--oracle-address", "nonsense"],
    ],
)
def test_cli_rejects_bad_distributed_options(args, capsys):
    from fmbench import cli

    assert cli.main(["run", "--tuner", "random", "--max-trials", "2", *args]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_rejects_workers_for_the_baseline(capsys):
    from fmbench import cli

    assert cli.main(["run", "--tuner", "baseline", "--workers", "2"]) == 2
    assert "baseline has no search" in capsys.readouterr().err


def test_heartbeats_tell_a_silent_worker_from_a_beating_one(tmp_path):
    now = [100.0]
    beats = heartbeat.Heartbeats(tmp_path, timeout=30, clock=lambda: now[0])
    (tmp_path / "alive-worker-0").write_text("1")
    (tmp_path / "alive-worker-1").write_text("1")
    assert beats.poll() == ({"worker-0", "worker-1"}, set())
    now[0] += 20
    (tmp_path / "alive-worker-0").write_text("2")  # worker-1 stays silent
    assert beats.poll() == ({"worker-0", "worker-1"}, set())
    now[0] += 11  # 31 s since worker-1's last beat, 11 s since worker-0's: only the change counts, not the file's time
    assert beats.poll() == ({"worker-0"}, {"worker-1"})
    (tmp_path / "alive-worker-1").write_text("2")  # it beats again
    assert beats.poll() == ({"worker-0", "worker-1"}, set())
    (tmp_path / "alive-worker-0").unlink()  # ended cleanly
    assert beats.poll() == ({"worker-1"}, set())


def test_a_worker_beats_while_it_runs_and_leaves_no_file_when_it_ends_cleanly(tmp_path):
    path = tmp_path / "alive-worker-0"
    with heartbeat.Heartbeat(path, interval=0.01):
        first = path.read_text()
        time.sleep(0.2)
        assert int(path.read_text()) > int(first)
    assert not path.exists()
    with pytest.raises(RuntimeError), heartbeat.Heartbeat(path, interval=0.01):
        raise RuntimeError("the worker failed")
    assert path.exists()  # a failed worker's beat stops, and the chief counts it as gone


def test_importing_the_package_loads_no_keras():
    """The CLI checks the distributed options, and a worker (`python -m`) picks its Keras backend, before Keras
    loads: the package's face must not import it."""
    code = "import sys, fmbench.search.distributed; print(sorted({'keras', 'keras_tuner'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


def _args(**given) -> argparse.Namespace:
    """The CLI's distributed options, as `fmbench run` parses them."""
    return argparse.Namespace(**{"workers": None, "role": None, "oracle_address": None, "run_dir": None, **given})


@pytest.mark.parametrize(
    ("tuner", "space"), [(name, space) for name in DISTRIBUTABLE for space in RUNNERS[name].spaces]
)
def test_every_space_the_registry_allows_is_served(tuner, space):
    options.check_options(_args(workers=2), RunSpec(tuner=tuner, seed=1, budget=Budget(max_trials=4), space=space))


def test_an_epoch_budget_is_refused_with_the_other_options():
    spec = RunSpec(tuner="random", seed=1, budget=Budget(max_epochs=12))
    with pytest.raises(SpecError, match="epoch budget .* not supported with --workers/--role"):
        options.check_options(_args(workers=2), spec)


def test_cli_rejects_an_epoch_budget_for_workers(capsys):
    from fmbench import cli

    assert cli.main(["run", "--tuner", "random", "--max-epochs", "12", "--workers", "2"]) == 2
    assert "not supported with --workers/--role" in capsys.readouterr().err


@pytest.mark.parametrize("space", options.distributable_spaces())
def test_a_worker_builds_the_models_of_the_space_the_chief_serves(space, tmp_path, monkeypatch):
    """The chief declares the spec's space and serves it over gRPC; a worker's tuner (an OracleClient of the
    chief's oracle) gets a trial of that space and builds its model. No training."""
    from keras_tuner.src.distribute import oracle_client

    from fmbench.budget import SearchClock
    from fmbench.models.trainer import KerasTrainer
    from fmbench.search.distributed import patches, serving

    spec = RunSpec(tuner="random", seed=1, budget=Budget(max_trials=2), epochs=1, space=space, profile="test")
    oracle = serving.declare_space(spec, KerasTrainer(spec), tmp_path)
    oracle.clock = SearchClock(spec.budget)
    server, port = distributed.bind_server("127.0.0.1", 0)
    patches.serve(oracle, server)
    server.start()
    try:
        monkeypatch.setattr(oracle_client, "TIMEOUT", 60)  # a broken server fails the test in a minute, not an hour
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "worker-0")  # monkeypatch restores all three after the test
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(port))
        tuner = worker_tuner.make_tuner(spec, tmp_path, "worker-0")
        trial = tuner.oracle.create_trial("worker-0")
        assert trial.status == "RUNNING"
        assert trial.hyperparameters.values == oracle.trials[trial.trial_id].hyperparameters.values
        assert tuner.hypermodel.build(trial.hyperparameters).output_shape == (None, 10)
    finally:
        server.stop(None)


def test_the_worker_tuner_puts_the_chiefs_score_under_the_recorder():
    """The chief's score must reach the trial after kt.Tuner.on_trial_end ends it at the chief and before the
    recording mixin reads it; the records are written last."""
    import keras_tuner as kt

    from fmbench.search import keras_tuner
    from fmbench.search.base import RecordingTuner

    for tuner in DISTRIBUTABLE:
        tuner_class, _ = keras_tuner.make(RunSpec(tuner=tuner, seed=1, budget=Budget(max_trials=4)))
        mro = worker_tuner.worker_tuner_class(tuner_class).__mro__
        assert mro[1] is worker_tuner.WritesRecords, mro
        assert mro.index(RecordingTuner) < mro.index(worker_tuner.ScoreFromChief) == mro.index(kt.Tuner) - 1, mro
        assert worker_tuner.worker_tuner_class(tuner_class) is worker_tuner.worker_tuner_class(tuner_class)


class _EndsBadly:
    """A stand-in for the recording tuner: records the trial, then fails as a consecutive-failure error would."""

    def __init__(self) -> None:
        self.records: list[TrialRecord] = []

    def on_trial_end(self, trial) -> None:
        self.records.append(TrialRecord("00", {}, "FAILED", None, 0, 0.0, 0.0, error="boom"))
        raise RuntimeError("Number of consecutive failures exceeded the limit of 3.")


class _WritesAfterFailing(worker_tuner.WritesRecords, _EndsBadly):
    pass


def test_a_trials_record_is_written_even_when_ending_it_raises(tmp_path):
    path = tmp_path / "trials-worker-0.jsonl"
    tuner = _WritesAfterFailing(records_to=path, worker_id="worker-0")
    with pytest.raises(RuntimeError, match="consecutive failures"):
        tuner.on_trial_end(trial=None)
    (record,) = rundir.RecordTail(tmp_path).poll()
    assert (record.trial_id, record.worker, record.error) == ("00", "worker-0", "boom")


# --- end to end: real workers on the shipped subset ------------------------------------------------


@pytest.mark.e2e
def test_chief_and_two_workers_share_one_budget(subset_dir, subset_split):
    from fmbench import run_rows

    result = protocol.run_distributed(
        _spec(4, subset_split),
        subset_split,
        progress=lambda line: None,
        workers=2,
        data_dir=str(subset_dir),
        stall_timeout=120,
    )
    assert result.error == "", result.error
    assert result.workers == 2
    assert result.trials_completed == 4 and len(result.trials) == 4  # the global budget: 4, not 4 per worker
    assert sorted(r.trial_id for r in result.trials) == [
        "0000",
        "0001",
        "0002",
        "0003",
    ]  # keras-tuner's ids without max_trials
    assert {r.worker for r in result.trials} == {"worker-0", "worker-1"}
    assert all(r.epochs == 1 and r.started_seconds >= 0 for r in result.trials)
    assert result.stopped_by == "trials" and result.test_accuracy is not None and result.retrain_epochs == 1
    assert {row["worker"] for row in run_rows.trial_rows(result)} == {"worker-0", "worker-1"}
    assert run_rows.run_row(result, {})["workers"] == 2
    assert _worker_processes() == []


@pytest.mark.e2e
def test_a_killed_workers_trial_goes_back_and_the_run_completes_its_budget(subset_dir, subset_split):
    killed: list[int] = []
    lines: list[str] = []

    def kill_worker_1(line: str) -> None:
        lines.append(line)
        if "worker-0 trial" in line and not killed:  # worker-0 just ended a trial; worker-1 is in the middle of its own
            victim = next(p for p in _worker_processes() if "worker-1" in p.cmdline())
            killed.append(victim.pid)
            victim.send_signal(signal.SIGKILL)

    result = protocol.run_distributed(
        _spec(6, subset_split),
        subset_split,
        progress=kill_worker_1,
        workers=2,
        data_dir=str(subset_dir),
        stall_timeout=120,
    )
    assert killed, "no trial finished before the test could kill a worker"
    assert result.error == "", result.error
    returned = [line for line in lines if "worker-1 was killed by signal 9" in line]
    assert len(returned) == 1 and "goes back to the oracle" in returned[0], lines
    assert result.trials_completed == 6 and sorted(r.trial_id for r in result.trials) == [f"000{i}" for i in range(6)]
    trial_id = returned[0].split("its trial ")[1].split()[0]
    assert [r.worker for r in result.trials if r.trial_id == trial_id] == [
        "worker-0"
    ]  # rerun by the survivor, recorded once
    assert result.stopped_by == "trials" and result.test_accuracy is not None
    assert _worker_processes() == []


@pytest.mark.e2e
def test_the_run_fails_when_no_worker_remains(subset_dir, subset_split):
    killed: list[int] = []

    def kill_both(line: str) -> None:
        if " trial " in line and not killed:
            for process in _worker_processes():
                killed.append(process.pid)
                process.send_signal(signal.SIGKILL)

    started = time.monotonic()
    result = protocol.run_distributed(
        _spec(200, subset_split),
        subset_split,
        progress=kill_both,
        workers=2,
        data_dir=str(subset_dir),
        stall_timeout=60,
    )
    assert len(killed) == 2
    assert result.stopped_by == "error" and result.error.startswith("no worker remains")
    assert "worker-0 was killed by signal 9" in result.error and "worker-1 was killed by signal 9" in result.error
    assert result.test_accuracy is None  # no retrain on a broken search
    assert time.monotonic() - started < 60
    assert _worker_processes() == []


@pytest.mark.e2e
def test_hung_workers_end_the_run_after_the_stall_timeout(subset_dir, subset_split):
    stopped: list[psutil.Process] = []

    def freeze_workers(line: str) -> None:
        if " trial " in line and not stopped:
            stopped.extend(_worker_processes())
            for process in stopped:
                process.send_signal(signal.SIGSTOP)  # alive but silent: only the stall timeout can tell

    result = protocol.run_distributed(
        _spec(200, subset_split),
        subset_split,
        progress=freeze_workers,
        workers=2,
        data_dir=str(subset_dir),
        stall_timeout=15,
    )
    # 15 s: long enough for a worker on a loaded machine to start its first trial, which is when they freeze.
    assert stopped and result.stopped_by == "error"
    assert "no trial started or ended for 15s" in result.error
    assert _worker_processes() == []
