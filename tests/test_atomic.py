"""fmbench.atomic: whole files or nothing, the caller's umask honoured without changing it, the folder fsynced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fmbench import atomic


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it after."""
    original = os.umask(0o022)
    os.umask(original)
    yield lambda mask: os.umask(mask)
    os.umask(original)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_mode_follows_the_umask(tmp_path: Path, umask, mask: int, mode: int) -> None:
    umask(mask)
    target = tmp_path / "out.csv"
    atomic.write_text(target, "a\n")
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_text() == "a\n"


def test_write_never_changes_the_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Setting the umask, even for a moment, changes it for every thread of the process.
    def no_umask(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:#o}) called")

    monkeypatch.setattr(os, "umask", no_umask)
    atomic.write_text(tmp_path / "out.csv", "a\n")
    atomic.write_text(tmp_path / "out.csv", "b\n")
    assert (tmp_path / "out.csv").read_text() == "b\n"


def test_folder_is_fsynced_after_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, int | None]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync folder" if stat.S_ISDIR(info.st_mode) else "fsync file", info.st_ino))
        real_fsync(fd)

    def replace(src, dst) -> None:
        real_replace(src, dst)
        events.append(("rename", None))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "sub" / "out.csv"
    atomic.write_text(target, "a\n")
    assert [name for name, _ in events] == ["fsync file", "rename", "fsync folder"]
    assert events[0][1] == target.stat().st_ino, "the file fsynced is the one renamed into place"
    assert events[2][1] == target.parent.stat().st_ino, "the folder fsynced is the target's"


def test_replaces_the_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    atomic.write_text(target, "a much longer first version\n")
    atomic.write_bytes(target, b"short\n")
    assert target.read_bytes() == b"short\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.csv"
    atomic.write_text(target, "old\n")

    def dying_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", dying_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic.write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
