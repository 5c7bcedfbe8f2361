"""Distributed search: port binding, record files, CLI options (fast); chief + 2 local workers on loopback (e2e)."""
from __future__ import annotations

import signal
import socket
import time

import psutil
import pytest

from fmbench import distributed
from fmbench.spec import Budget, DataSizes, RunSpec, SpecError, TelemetrySummary, TrialRecord


def _spec(max_trials: int, split) -> RunSpec:
    """The sizes of the conftest's tiny split: the workers load the same subset with them."""
    sizes = DataSizes(train=len(split.y_train), val=len(split.y_val), test=len(split.y_test))
    return RunSpec(tuner="random", seed=1, budget=Budget(max_trials=max_trials), sizes=sizes, epochs=1, batch_size=64, profile="test")


def _worker_processes() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "fmbench.distributed" in " ".join(child.cmdline()):
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
    record = TrialRecord("03", {"units": 64}, "COMPLETED", 0.8, 2, 1.5, 3.0, telemetry=TelemetrySummary(samples=2), worker="worker-1")
    path = tmp_path / "trials-worker-1.jsonl"
    line = distributed.record_to_json(record) + "\n"
    path.write_text(line + line[:10])  # a second record half written
    tail = distributed._Tail(tmp_path)
    assert tail.poll() == [record]
    with open(path, "a") as handle:
        handle.write(line[10:])
    assert tail.poll() == [record] and len(tail.records) == 2


@pytest.mark.parametrize("args", [
    ["--workers", "0"],
    ["--role", "chief"],  # no --run-dir
    ["--role", "worker", "--run-dir", "x"],  # no --oracle-address
    ["--oracle-address", "127.0.0.1:1"],  # neither role nor workers
    ["--workers", "2", "--oracle-address", "nonsense"],
])
def test_cli_rejects_bad_distributed_options(args, capsys):
    from fmbench import cli

    assert cli.main(["run", "--tuner", "random", "--max-trials", "2", *args]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_cli_rejects_workers_for_the_baseline(capsys):
    from fmbench import cli

    assert cli.main(["run", "--tuner", "baseline", "--workers", "2"]) == 2
    assert "baseline has no search" in capsys.readouterr().err


# --- end to end: real workers on the shipped subset ------------------------------------------------


@pytest.mark.e2e
def test_chief_and_two_workers_share_one_budget(subset_dir, subset_split):
    from fmbench import results

    result = distributed.run(_spec(4, subset_split), subset_split, progress=lambda line: None, workers=2, data_dir=str(subset_dir), stall_timeout=120)
    assert result.error == "", result.error
    assert result.workers == 2
    assert result.trials_completed == 4 and len(result.trials) == 4  # the global budget: 4, not 4 per worker
    assert sorted(r.trial_id for r in result.trials) == ["0000", "0001", "0002", "0003"]  # keras-tuner's ids without max_trials
    assert {r.worker for r in result.trials} == {"worker-0", "worker-1"}
    assert all(r.epochs == 1 and r.started_seconds >= 0 for r in result.trials)
    assert result.stopped_by == "trials" and result.test_accuracy is not None and result.retrain_epochs == 1
    assert {row["worker"] for row in results.trial_rows(result)} == {"worker-0", "worker-1"}
    assert results.run_row(result, {})["workers"] == 2
    assert _worker_processes() == []


@pytest.mark.e2e
def test_a_killed_worker_ends_the_run_with_an_error_row(subset_dir, subset_split):
    killed: list[int] = []

    def kill_one_worker(line: str) -> None:
        if " trial " in line and not killed:  # the first finished trial: the search is under way
            victim = next(p for p in _worker_processes() if "worker-1" in p.cmdline())
            killed.append(victim.pid)
            victim.send_signal(signal.SIGKILL)

    started = time.monotonic()
    result = distributed.run(_spec(200, subset_split), subset_split, progress=kill_one_worker, workers=2, data_dir=str(subset_dir), stall_timeout=60)
    assert killed, "no trial finished before the test could kill a worker"
    assert result.stopped_by == "error"
    assert "worker-1 was killed by signal 9" in result.error
    assert result.test_accuracy is None  # no retrain on a broken search
    assert time.monotonic() - started < 60
    assert _worker_processes() == []  # the surviving worker was stopped too: no orphans
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE


@pytest.mark.e2e
def test_hung_workers_end_the_run_after_the_stall_timeout(subset_dir, subset_split):
    stopped: list[psutil.Process] = []

    def freeze_workers(line: str) -> None:
        if " trial " in line and not stopped:
            stopped.extend(_worker_processes())
            for process in stopped:
                process.send_signal(signal.SIGSTOP)  # alive but silent: only the stall timeout can tell

    result = distributed.run(_spec(200, subset_split), subset_split, progress=freeze_workers, workers=2, data_dir=str(subset_dir), stall_timeout=3)
    assert stopped and result.stopped_by == "error"
    assert "no trial started or ended for 3s" in result.error
    assert _worker_processes() == []
