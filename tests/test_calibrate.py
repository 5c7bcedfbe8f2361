"""Calibration: a noise model built from runs, and the simulated false-alarm rate and power of the gate."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmbench import cli, resultset
from fmbench.gate import calibrate
from fmbench.gate import reference as ref_io

GOLDEN = Path(__file__).parent / "golden_regress" / "smoke"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_runs(tmp_path) -> list[Path]:
    """The real smoke run and a copy with other numerics: a few test images flip in some runs."""
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(GOLDEN, a)
    shutil.copytree(GOLDEN, b)
    runs = pd.read_csv(b / "runs.csv", dtype=str, keep_default_na=False)
    flips = np.random.default_rng(3).integers(-3, 4, len(runs)) / 1000
    runs["test_accuracy"] = (runs.test_accuracy.astype(float) + flips).round(6).astype(str)
    runs["run_id"] = runs.run_id + "-b"
    runs.to_csv(b / "runs.csv", index=False)
    trials = pd.read_csv(b / "trials.csv", dtype=str, keep_default_na=False)
    trials["run_id"] = trials.run_id + "-b"
    trials.to_csv(b / "trials.csv", index=False)
    return [a, b]


def test_build_records_every_unit_difference_between_runs(two_runs, tmp_path, capsys):
    out = tmp_path / "noise.json"
    assert cli.main(["calibrate", "build", *map(str, two_runs), "--out", str(out)]) == 0
    model = calibrate.load(out)
    [pair] = model["pairs"]
    truth = pd.read_csv(two_runs[1] / "runs.csv").test_accuracy - pd.read_csv(two_runs[0] / "runs.csv").test_accuracy
    assert sorted(u["difference"] for u in pair["units"]) == pytest.approx(sorted(truth.round(6)))
    assert {u["kind"] for u in pair["units"]} == {"untimed", "time-limited"}
    assert model["profile"] == "smoke" and len(model["runs"]) == 2


def test_build_needs_two_runs_of_one_profile(two_runs, capsys):
    assert cli.main(["calibrate", "build", str(two_runs[0]), "--out", "x.json"]) == 2
    assert "at least two runs" in capsys.readouterr().err


def test_false_alarms_stay_under_five_percent_and_power_grows_with_the_drop(two_runs):
    reference = ref_io.build(resultset.load(two_runs[0]))
    draw, found = calibrate.empirical_draw(calibrate.build(two_runs))
    result = calibrate.calibrate(reference, draw, runs=1000)
    assert result["false_alarm_rate"] <= 0.05
    assert result["smallest_drop"] is not None and result["power"][result["smallest_drop"]] >= 0.8
    drops = sorted(result["power"])
    assert result["power"][drops[0]] <= result["power"][drops[-1]]


def test_normal_noise_holds_the_family_wise_rate_of_holm():
    """With N(0, 2 points) per unit the t-tests are exact: the family-wise rate is at most 5% (one-sided, Holm)."""
    reference = ref_io.build(resultset.load(GOLDEN))
    rng = np.random.default_rng(1)
    units = calibrate.reference_units(reference)
    rate = calibrate.simulate(units, calibrate.normal_draw(0.02), 0.0, 4000, rng)
    assert 0.0 < rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)
    assert calibrate.simulate(units, calibrate.normal_draw(0.02), 0.10, 500, rng) == 1.0


def test_committed_noise_model_calibrates_the_committed_reference(tmp_path, capsys):
    """The CI gate's own figures: >= 1,000 simulated runs of unchanged code, false alarms <= 5% (exit 0)."""
    out = tmp_path / "figures.json"
    code = cli.main(
        [
            "calibrate",
            "check",
            str(REPO / "results/reference/smoke.json"),
            "--noise",
            str(REPO / "results/noise/smoke.json"),
            "--runs",
            "1000",
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    figures = json.loads(out.read_text())
    assert figures["runs"] >= 1000 and figures["false_alarm_rate"] <= 0.05
    assert "family-wise false-alarm rate" in text and re.search(
        r"real pairs of runs judged by the gate: \d+ of \d+ failed", text
    )
