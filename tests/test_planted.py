"""The gate's planted faults (scripts/planted/*.patch) still apply to the code they plant into: a refactor that moves
the lines a fault patches must carry the fault along, or the gate's table of caught regressions cannot be rebuilt."""

from __future__ import annotations

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
