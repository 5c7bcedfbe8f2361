"""Where and with what a run ran, as every run row records it: host, CPU, GPU, library versions and the code's commit.

One gatherer, extended by hooks (as pytest-benchmark's pytest_benchmark_update_machine_info extends its own).
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path

from fmbench.results import ResultsError
from fmbench.schema import MACHINE_COLUMNS

NO_COMMIT = "unknown"  # the commit recorded where the code is not its own git checkout
DIRTY = "-dirty"  # appended to the commit of a checkout whose code has uncommitted changes

MachineHook = Callable[[dict], None]  # updates a machine-info dict in place: adds a field's value or corrects one
MACHINE_HOOKS: list[MachineHook] = []  # hooks every row applies; a plugin or conftest appends its own here
LIBRARIES = {  # row column -> the distribution whose installed version it records
    "tensorflow_version": "tensorflow",
    "keras_version": "keras",
    "keras_tuner_version": "keras-tuner",
    "optuna_version": "optuna",
    "sklearn_version": "scikit-learn",
    "jax_version": "jax",
}


def machine_info(hooks: Iterable[MachineHook] | None = None) -> dict:
    """Where and with what a run ran, one value per MACHINE column: what this module gathers, then each hook
    (MACHINE_HOOKS unless `hooks` is given) in order. A hook may only set machine columns: a row has no others."""
    info = dict(_gathered())
    for hook in MACHINE_HOOKS if hooks is None else hooks:
        hook(info)
        unknown = [key for key in info if key not in MACHINE_COLUMNS]
        if unknown:
            raise ResultsError(
                f"machine hook {getattr(hook, '__name__', hook)!r} set {', '.join(map(str, unknown))}, which rows "
                f"have no column for; set one of {', '.join(MACHINE_COLUMNS)}, or add a Column to schema.MACHINE"
            )
    return {column: info.get(column) for column in MACHINE_COLUMNS}


@functools.lru_cache(maxsize=1)
def _gathered() -> dict:
    """What this module knows, read once per process: importing the libraries for their versions takes seconds."""
    return {**host_info(), **library_versions(), "commit": code_commit()}


def host_info() -> dict:
    """Host, CPU, GPU and Python; the host name changes with every VM, so history keys machines on the others."""
    from fmbench import telemetry

    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu_model": ", ".join(telemetry.gpu_names()) or "no GPU",  # never empty: rows are grouped by it
        "python_version": platform.python_version(),
    }


def library_versions() -> dict:
    """The installed versions of the libraries that train and search, read from their metadata ('not installed'
    for one that is absent: a JAX-only GPU machine has no TensorFlow), and the Keras backend: KERAS_BACKEND changes
    every number silently. Importing TensorFlow for its version would load it on a JAX run."""
    from fmbench import backend

    versions = {column: backend.installed_version(name) for column, name in LIBRARIES.items()}
    if versions["keras_version"] == "not installed":
        return versions | {"keras_backend": "not installed"}
    return versions | {"keras_backend": backend.name()}


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo's text (read here unless given); where it names none (no Linux, an
    ARM kernel), the platform's processor or machine name, so the row is never empty."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def code_commit() -> str:
    """The commit every row of this process records, read once: a session reads it before its first cell, so a
    commit made while the session runs (its code already loaded) never labels its rows."""
    return _commit()


def _commit() -> str:
    """The git commit of the fmbench checkout, with DIRTY appended when its code has uncommitted changes; NO_COMMIT
    without one.

    Changes under results/ and to markdown files do not count: a run rewriting the committed tables it is about
    to replace, or the README edited while a session runs, is no change to the code that produces the rows.

    Only a checkout whose root holds this package counts: an installed copy (in a virtual
    environment inside some other repository, say) must not report that repository's commit.
    """
    here = Path(__file__).resolve().parent
    try:
        top = _git(here, "rev-parse", "--show-toplevel")
        if Path(top).resolve() != here.parent:
            return NO_COMMIT
        sha = _git(here, "rev-parse", "--short=12", "HEAD")
        dirty = _git(
            here.parent,
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":(exclude)results",
            ":(exclude)*.md",
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return NO_COMMIT
    return f"{sha}{DIRTY}" if dirty else sha


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
    ).stdout.strip()
