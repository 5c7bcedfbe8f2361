"""fmbench.report.plots: one colour per tuner everywhere, one panel per budget, the diagram only where it means
something."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from fmbench import resultset
from fmbench.registry import BASELINE, TUNER_NAMES
from fmbench.report import plots

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def golden(tmp_path) -> Path:
    folder = tmp_path / "golden"
    shutil.copytree(GOLDEN, folder)
    return folder


def test_each_tuner_keeps_one_colour_of_its_own() -> None:
    colours = [plots.tuner_colour(t) for t in TUNER_NAMES]
    assert len(set(colours)) == len(colours), "two tuners share a colour"
    assert plots.tuner_colour(BASELINE) == plots.BASELINE_COLOUR not in colours


def _add_budget(folder: Path, label: str) -> None:
    """The trials3 cells again under another budget label: one more budget for the figures."""
    runs = pd.read_csv(folder / "runs.csv", dtype=str)
    trials = pd.read_csv(folder / "trials.csv", dtype=str)
    extra = runs[runs["budget"] == "trials3"].assign(
        budget=label,
        run_id=lambda r: r["run_id"] + f"-{label}",
        cell=lambda r: r["cell"].str.replace("trials3", label),
    )
    more = trials[trials["run_id"].isin(runs.loc[runs["budget"] == "trials3", "run_id"])].assign(
        run_id=lambda t: t["run_id"] + f"-{label}", budget=label
    )
    pd.concat([runs, extra]).to_csv(folder / "runs.csv", index=False)
    pd.concat([trials, more]).to_csv(folder / "trials.csv", index=False)


def test_one_panel_per_budget(golden, tmp_path) -> None:
    """A third budget widens the anytime figure by one panel instead of adding series to one axis."""
    _add_budget(golden, "trials9")
    two = plots.write_all(resultset.load(golden), 0.8, tmp_path / "two", "r")
    _add_budget(golden, "trials27")
    three = plots.write_all(resultset.load(golden), 0.8, tmp_path / "three", "r")
    assert [name for _, name in two] == [name for _, name in three]
    width = lambda folder: Image.open(folder / "r-val-vs-seconds.png").size[0]  # noqa: E731 - one-line helper
    added = width(tmp_path / "three") - width(tmp_path / "two")
    assert added == pytest.approx(plots.PANEL_WIDTH * 100, abs=2), "one more budget, one more panel"


def test_no_diagram_without_three_ranked_runs(golden, tmp_path) -> None:
    runs = pd.read_csv(golden / "runs.csv", dtype=str)
    runs[runs["tuner"].isin([BASELINE, "random"])].to_csv(golden / "runs.csv", index=False)
    names = [name for _, name in plots.write_all(resultset.load(golden), 0.8, tmp_path, "r")]
    assert "r-critical-difference.png" not in names and not (tmp_path / "r-critical-difference.png").exists()
    assert "r-test-accuracy.png" in names
