"""The gate's planted faults (scripts/planted/*.patch) still apply to the code they plant into: a refactor that moves
the lines a fault patches must carry the fault along, or the gate's table of caught regressions cannot be rebuilt."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from fmbench import cli

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


FRESH_RUN = REPO / "results" / "gate" / "fresh" / "offset-5"  # a real harmless run of the gate's cells
GATE_REFERENCE = REPO / "results" / "reference" / "gate.json"


def _fault_folder(tmp_path: Path, name: str, tuner_drop: dict[str, float]) -> Path:
    """The fresh run as a fault's folder would hold it, with chosen tuners' test accuracies lowered."""
    folder = tmp_path / name
    shutil.copytree(FRESH_RUN, folder)
    shutil.copy(PATCHES[0], folder)
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    lowered = runs.tuner.map(tuner_drop).fillna(0.0)
    runs["test_accuracy"] = (runs.test_accuracy.astype(float) - lowered).round(6).astype(str)
    runs.to_csv(folder / "runs.csv", index=False)
    return folder


def _table(text: str) -> dict[str, dict[str, str]]:
    """The markdown table as {fault: {column: cell}}."""
    lines = [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]
    return {row[0]: dict(zip(lines[0], row)) for row in lines[1:]}


def test_the_planted_table_shows_each_tuners_move_and_bolds_what_the_gate_fails(tmp_path, capsys):
    harmless = _fault_folder(tmp_path, "harmless", {})
    hyperband_down = _fault_folder(tmp_path, "hyperband-down", {"hyperband": 0.03})
    out = tmp_path / "planted.md"
    argv = [str(harmless), str(hyperband_down), "--reference", str(GATE_REFERENCE), "--out", str(out)]
    assert cli.main(["calibrate", "planted", *argv]) == 0
    assert out.read_text() in capsys.readouterr().out
    rows = _table(out.read_text())
    assert rows["harmless"]["gate"] == "passed" and "**" not in "".join(rows["harmless"].values())
    down = rows["hyperband-down"]
    assert down["what it does"] == "the model never proposes, every trial is random"  # the patch's own words
    assert down["gate"].startswith("caught")
    assert float(down["hyperband (pts)"].strip("*")) == pytest.approx(float(rows["harmless"]["hyperband (pts)"]) - 3)
    assert down["hyperband (pts)"].startswith("**")
    assert not any(down[f"{t} (pts)"].startswith("**") for t in ("baseline", "random", "bayesian", "tpe"))


def test_planted_with_seeds_judges_the_faults_on_those_seeds(tmp_path, capsys):
    folder = _fault_folder(tmp_path, "hyperband-down", {})
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    lowered = (runs.tuner == "hyperband") & (runs.seed.astype(int) > 1)
    runs.loc[lowered, "test_accuracy"] = (runs.test_accuracy[lowered].astype(float) - 0.03).round(6).astype(str)
    runs.to_csv(folder / "runs.csv", index=False)
    argv = ["calibrate", "planted", str(folder), "--reference", str(GATE_REFERENCE)]
    assert _table(_printed(argv, capsys))["hyperband-down"]["gate"].startswith("caught")
    assert _table(_printed([*argv, "--seeds", "1"], capsys))["hyperband-down"]["gate"] == "passed"


def _printed(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 0
    return capsys.readouterr().out


def test_a_folder_without_its_patch_is_refused(tmp_path, capsys):
    folder = _fault_folder(tmp_path, "no-patch", {})
    for patch in folder.glob("*.patch"):
        patch.unlink()
    assert cli.main(["calibrate", "planted", str(folder), "--reference", str(GATE_REFERENCE)]) == 2
    assert "no .patch" in capsys.readouterr().err
