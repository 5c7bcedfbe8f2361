"""scripts/replay_fidelity.py on doctored copies of the golden rows (no training): Δ vs baseline side by side, the
agreement per tuner, the two rankings' Kendall tau, and exit 2 with one line on folders it cannot compare."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import scripts_module

GOLDEN = Path(__file__).resolve().parent / "golden"
replay_fidelity = scripts_module.load("replay_fidelity")


def _copy(tmp_path: Path, name: str, shift: dict[str, float]) -> Path:
    """The golden rows with each named tuner's test accuracy moved by its shift (in accuracy)."""
    folder = tmp_path / name
    shutil.copytree(GOLDEN, folder)
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    for tuner, delta in shift.items():
        rows = (runs.tuner == tuner) & (runs.test_accuracy != "")  # a failed run has no accuracy to move
        runs.loc[rows, "test_accuracy"] = (runs.loc[rows, "test_accuracy"].astype(float) + delta).round(6).astype(str)
    runs.to_csv(folder / "runs.csv", index=False)
    return folder


def _row(text: str, tuner: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {tuner} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_replay_that_ranks_as_real_training_agrees_and_one_that_reverses_it_does_not(tmp_path, capsys):
    real = _copy(tmp_path, "real", {"random": 0.05, "hyperband": 0.10})  # hyperband > random > baseline
    same = _copy(tmp_path, "same", {"random": 0.04, "hyperband": 0.09})
    reversed_ = _copy(tmp_path, "reversed", {"random": -0.05, "hyperband": -0.10})  # baseline > random > hyperband
    assert replay_fidelity.main([str(real), str(same)]) == 0
    out = capsys.readouterr().out
    assert _row(out, "hyperband")[3] == "yes" and "Kendall's tau between the two rankings of 3 tuners: +1.00" in out
    assert replay_fidelity.main([str(real), str(reversed_)]) == 0
    out = capsys.readouterr().out
    assert _row(out, "hyperband")[3] == _row(out, "random")[3] == "NO"
    assert "Kendall's tau between the two rankings of 3 tuners: -1.00" in out


def test_folders_it_cannot_compare_exit_2_with_one_line(tmp_path, capsys):
    assert replay_fidelity.main([str(GOLDEN), str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("replay_fidelity:") and len(err.splitlines()) == 1
    other = _copy(tmp_path, "other", {})
    runs = pd.read_csv(other / "runs.csv", dtype=str, keep_default_na=False)
    runs.loc[runs.tuner != "baseline", "budget"] = "epochs12"
    runs.to_csv(other / "runs.csv", index=False)
    assert replay_fidelity.main([str(GOLDEN), str(other)]) == 2
    assert "share no budget" in capsys.readouterr().err
