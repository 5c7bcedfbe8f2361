"""scripts/backend_equivalence.py on doctored copies of the golden rows (no training): the paired difference, its
interval, the agreement verdict and the seconds ratio per cell, and exit 2 with one line on folders it cannot
compare."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import scripts_module

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"


backend_equivalence = scripts_module.load("backend_equivalence")


def _jax_copy(tmp_path: Path, shift_by_seed: dict[int, float], seconds_factor: float = 2.0) -> Path:
    """The golden rows as if run on JAX: each seed's test accuracy moved by its shift, wall seconds scaled."""
    folder = tmp_path / "jax"
    shutil.copytree(GOLDEN, folder)
    runs = pd.read_csv(folder / "runs.csv")
    runs["keras_backend"] = "jax"
    runs["jax_version"] = "0.0.test"
    runs["test_accuracy"] = runs["test_accuracy"] + runs["seed"].map(shift_by_seed)
    runs["wall_seconds"] = runs["wall_seconds"] * seconds_factor
    runs.to_csv(folder / "runs.csv", index=False)
    return folder


def _table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    """(tuner, budget) -> the table row's cells."""
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and cells[0] in {"baseline", "random", "hyperband"}:
            rows[(cells[0], cells[1])] = cells
    return rows


def test_small_shift_agrees_and_large_shift_is_not_shown(tmp_path):
    small = backend_equivalence.compare(GOLDEN, _jax_copy(tmp_path / "a", {1: 0.001, 2: 0.002, 3: 0.003}), 0.5)
    large = backend_equivalence.compare(GOLDEN, _jax_copy(tmp_path / "b", {1: 0.01, 2: 0.02, 3: 0.03}), 0.5)
    small_rows, large_rows = _table_rows(small), _table_rows(large)
    assert set(small_rows) == {("baseline", "none"), ("random", "trials3"), ("hyperband", "trials3")}
    baseline = small_rows[("baseline", "none")]
    assert baseline[2] == "3"  # seeds
    assert baseline[5] == "+0.20"  # Δ points: the mean shift
    low, high = (float(x) for x in baseline[6].split(" to "))
    assert low < 0.20 < high and -0.5 <= low and high <= 0.5
    assert baseline[8] == "yes (±0.5)"
    assert baseline[11] == "2.00"  # JAX's seconds were doubled
    assert large_rows[("baseline", "none")][5] == "+2.00"
    assert large_rows[("baseline", "none")][8] == "not shown (±0.5)"
    # Hyperband's seed 3 failed: its cell pairs the two seeds that finished.
    assert small_rows[("hyperband", "trials3")][2] == "2"
    assert "jax 0.0.test against tensorflow" in small


def test_no_common_cell_exits_2_with_one_line(tmp_path, capsys):
    other = _jax_copy(tmp_path, {1: 0.0, 2: 0.0, 3: 0.0})
    runs = pd.read_csv(other / "runs.csv")
    runs["budget"] = "trials7"
    runs.loc[runs.tuner == "baseline", "tuner"] = "tpe"
    runs.to_csv(other / "runs.csv", index=False)
    assert backend_equivalence.main([str(GOLDEN), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "share no cell" in err


def test_missing_folder_exits_2(tmp_path, capsys):
    assert backend_equivalence.main([str(GOLDEN), str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith("backend_equivalence: ")


def test_margin_is_the_verdicts_bound(tmp_path):
    text = backend_equivalence.compare(GOLDEN, _jax_copy(tmp_path, {1: 0.001, 2: 0.002, 3: 0.003}), 0.1)
    assert _table_rows(text)[("baseline", "none")][8] == "not shown (±0.1)"
