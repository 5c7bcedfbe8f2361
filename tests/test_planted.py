"""The gate's planted faults (scripts/planted/*.patch) still apply to the code they plant into: a refactor that moves
the lines a fault patches must carry the fault along, or the gate's table of caught regressions cannot be rebuilt."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PATCHES = sorted((REPO / "scripts" / "planted").glob("*.patch"))


def test_the_seven_faults_the_gate_design_names_are_there():
    assert [p.stem for p in PATCHES] == [
        "bayesian-random-only",
        "dropout-stuck-at-max",
        "hyperband-never-promotes",
        "labels-shuffled-10pct",
        "learning-rate-div30",
        "pixels-unscaled",
        "tpe-startup-whole-budget",
    ]


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_each_fault_applies_to_this_commit_and_says_it_is_one(patch):
    check = subprocess.run(["git", "apply", "--check", str(patch)], cwd=REPO, capture_output=True, text=True)
    assert check.returncode == 0, f"{patch.name} no longer applies: remake it against the moved code ({check.stderr})"
    added = [line for line in patch.read_text().splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert any("planted fault" in line for line in added), f"{patch.name}: the fault's line must say it is one"
    for line in added:  # the label is a comment at the line's end: code after the "#" would silently vanish
        comment = line.partition("#")[2]
        assert not any(mark in comment for mark in "=()"), f"{patch.name}: code in a comment: {line}"


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.stem)
def test_each_patched_file_is_still_python(patch, tmp_path):
    # A fault's comment once swallowed the closing bracket of its line: the patched module did not even import,
    # so the gate would have "caught" a crash, not the fault.
    touched = [line.removeprefix("+++ b/") for line in patch.read_text().splitlines() if line.startswith("+++ b/")]
    for name in touched:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    subprocess.run(["git", "apply", str(patch)], cwd=tmp_path, check=True, capture_output=True)
    for name in touched:
        source = (tmp_path / name).read_text()
        assert source != (REPO / name).read_text()
        ast.parse(source, filename=f"{name} with {patch.name}")
