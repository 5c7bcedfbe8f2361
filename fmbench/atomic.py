"""Atomic file writes: a temporary file in the same folder, fsync, a rename over the target, fsync of the folder.

A reader (or a Ctrl-C) never sees half a file; what was there stays whole until the rename, and the
folder's fsync makes the rename itself survive a power cut.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new hidden file next to path, created with mode 0o666 so the kernel applies the caller's umask.

    Not tempfile.mkstemp: it makes 0600 files, and reading the umask to widen them means setting it,
    which changes it for every thread of the process (the telemetry sampler, gRPC) meanwhile.
    """
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:  # a name already taken (48 random bits): draw another
            continue


def _fsync_folder(folder: Path) -> None:
    """Persist the folder's entry for the renamed file (POSIX; Windows cannot open a folder)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
