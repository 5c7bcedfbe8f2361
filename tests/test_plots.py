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


def test_one_panel_per_budget(golden, tmp_path) -> None:
    """A second budget widens the anytime figure by one panel instead of adding series to one axis."""
    one = plots.write_all(resultset.load(golden), 0.8, tmp_path / "one", "r")
    runs = pd.read_csv(golden / "runs.csv", dtype=str)
    extra = runs[runs["budget"] == "trials3"].assign(
        budget="trials9",
        run_id=lambda r: r["run_id"] + "-9",
        cell=lambda r: r["cell"].str.replace("trials3", "trials9"),
    )
    trials = pd.read_csv(golden / "trials.csv", dtype=str)
    more = trials[trials["run_id"].isin(extra["run_id"].str.removesuffix("-9"))].assign(
        run_id=lambda t: t["run_id"] + "-9", budget="trials9"
    )
    pd.concat([runs, extra]).to_csv(golden / "runs.csv", index=False)
    pd.concat([trials, more]).to_csv(golden / "trials.csv", index=False)
    two = plots.write_all(resultset.load(golden), 0.8, tmp_path / "two", "r")
    assert [name for _, name in one] == [name for _, name in two]
    width = lambda folder: Image.open(folder / "r-val-vs-seconds.png").size[0]  # noqa: E731 - one-line helper
    added = width(tmp_path / "two") - width(tmp_path / "one")
    assert added == pytest.approx(plots.PANEL_WIDTH * 100, abs=2), "one more budget, one more panel"


def test_no_diagram_without_three_ranked_runs(golden, tmp_path) -> None:
    runs = pd.read_csv(golden / "runs.csv", dtype=str)
    runs[runs["tuner"].isin([BASELINE, "random"])].to_csv(golden / "runs.csv", index=False)
    names = [name for _, name in plots.write_all(resultset.load(golden), 0.8, tmp_path, "r")]
    assert "r-critical-difference.png" not in names and not (tmp_path / "r-critical-difference.png").exists()
    assert "r-test-accuracy.png" in names
