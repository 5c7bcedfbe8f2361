"""The run directory: the files through which a chief and its workers meet, on one host or on shared storage.

search.json    the chief's spec, then (once it serves) its wall-clock start and deadline; workers wait for both
ready-<id>     a worker has loaded TensorFlow and its data: its start-up is not search time
alive-<id>     a worker's heartbeat (fmbench.heartbeat)
trials-<id>.jsonl  one TrialRecord per line, appended as each of that worker's trials ends
<id>.log       a local worker's output, for the chief's error message when it dies
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from fmbench import atomic
from fmbench.spec import Budget, DataSizes, RunSpec, SpecError, TelemetrySummary, TrialRecord

SEARCH_FILE = "search.json"
POLL = 0.2  # seconds between looks at the folder


def ready_file(folder: Path, worker_id: str) -> Path:
    return folder / f"ready-{worker_id}"


def alive_file(folder: Path, worker_id: str) -> Path:
    return folder / f"alive-{worker_id}"


def trials_file(folder: Path, worker_id: str) -> Path:
    return folder / f"trials-{worker_id}.jsonl"


def log_file(folder: Path, worker_id: str) -> Path:
    return folder / f"{worker_id}.log"


def clear(folder: Path) -> None:
    """Remove what an earlier search left in a reused run directory: its records, beats and rendezvous."""
    for stale in [*folder.glob("trials-*.jsonl"), *folder.glob("ready-*"), *folder.glob("alive-*")]:
        stale.unlink(missing_ok=True)
    (folder / SEARCH_FILE).unlink(missing_ok=True)


def write_search(folder: Path, payload: dict) -> None:
    atomic.write_text(folder / SEARCH_FILE, json.dumps(payload))  # a worker never reads half a file


def wait_for_search(folder: Path, key: str, timeout: float) -> dict:
    """search.json once it holds `key`; a SpecError after `timeout` seconds without a chief."""
    path, ends = folder / SEARCH_FILE, time.monotonic() + timeout
    while time.monotonic() < ends:
        try:
            info = json.loads(path.read_text())
            if key in info:
                return info
        except (OSError, ValueError):
            pass
        time.sleep(POLL)
    raise SpecError(f"{path}: no chief wrote '{key}' within {timeout:g}s; start the chief with the same --run-dir")


def spec_from_json(fields: dict) -> RunSpec:
    """The chief's RunSpec as search.json holds it (dataclasses.asdict)."""
    return RunSpec(**{**fields, "budget": Budget(**fields["budget"]), "sizes": DataSizes(**fields["sizes"])})


def record_to_json(record: TrialRecord) -> str:
    return json.dumps(
        dataclasses.asdict(record), default=lambda value: value.item() if hasattr(value, "item") else str(value)
    )


def record_from_json(line: str) -> TrialRecord:
    fields = json.loads(line)
    return TrialRecord(**{**fields, "telemetry": TelemetrySummary(**fields["telemetry"])})


class RecordTail:
    """Reads the workers' JSON-lines files as they grow; a line counts once it is whole."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.offsets: dict[Path, int] = {}
        self.records: list[TrialRecord] = []

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


def log_tail(path: Path) -> str:
    """The last line a dead worker wrote, for the chief's error message."""
    lines = (
        [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if path.exists()
        else []
    )
    return f"last log line: {lines[-1]}" if lines else f"{path} is empty"
