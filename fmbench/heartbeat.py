"""Telling a vanished worker from a slow one: each worker beats (rewrites a file in the shared run folder),
and the chief counts a worker as gone when its beat stops changing. Files, because the run folder is the one
thing a chief and workers on other hosts already share; and a worker's process may be on another host,
where the chief cannot see it die.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from fmbench import atomic

HEARTBEAT_SECONDS = 5.0  # how often a worker rewrites its alive-<id> file
HEARTBEAT_TIMEOUT = 30.0  # seconds without a new beat before the chief counts a worker as gone


class Heartbeats:
    """Which workers still beat. A worker rewrites its alive-<id> file every HEARTBEAT_SECONDS and removes it
    when it ends cleanly; a change is timed on this host's clock, so other hosts' clocks never matter."""

    def __init__(self, folder: Path, timeout: float = HEARTBEAT_TIMEOUT, clock: Callable[[], float] = time.monotonic):
        self.folder, self.timeout, self.clock = folder, timeout, clock
        self.last: dict[str, tuple[str, float]] = {}  # worker -> (its last beat, when it changed here)

    def poll(self) -> tuple[set[str], set[str]]:
        """(beating, stale): the workers heard within the timeout, and those silent longer."""
        now, present = self.clock(), set()
        for path in self.folder.glob("alive-*"):
            name = path.name.removeprefix("alive-")
            try:
                beat = path.read_text()
            except OSError:  # removed between the listing and the read: it ended
                continue
            present.add(name)
            if self.last.get(name, ("",))[0] != beat:
                self.last[name] = (beat, now)
        self.last = {name: seen for name, seen in self.last.items() if name in present}
        stale = {name for name, (_, when) in self.last.items() if now - when > self.timeout}
        return set(self.last) - stale, stale


class Heartbeat:
    """A worker's side: a thread that rewrites alive-<id> with a counter while the process lives."""

    def __init__(self, path: Path, interval: float = HEARTBEAT_SECONDS):
        self.path, self.interval = path, interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="fmbench-heartbeat", daemon=True)

    def _beat(self) -> None:
        count = 1
        while not self._stopping.wait(self.interval):
            count += 1
            atomic.write_text(self.path, str(count))

    def __enter__(self) -> Heartbeat:
        atomic.write_text(self.path, "1")  # the first beat before the worker goes on: the chief sees it at once
        self._thread.start()
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self._stopping.set()
        self._thread.join()
        if kind is None:  # ended cleanly: gone from the chief's list without being counted as lost
            self.path.unlink(missing_ok=True)
