"""Calibration: real runs judged against the reference, resampled a seed at a time, false alarms and power."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmbench import cli, resultset
from fmbench.gate import calibrate, noise, simulation, verdicts
from fmbench.gate import reference as ref_io

GOLDEN = Path(__file__).parent / "golden_regress" / "smoke"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def reference(tmp_path) -> Path:
    path = tmp_path / "reference.json"
    ref_io.write(path, ref_io.build(resultset.load(GOLDEN)))
    return path


def varied(tmp_path: Path, name: str, shift) -> Path:
    """A copy of the golden run whose test accuracies move by shift(runs) (an array, one per run row)."""
    folder = tmp_path / name
    shutil.copytree(GOLDEN, folder)
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    runs["test_accuracy"] = (runs.test_accuracy.astype(float) + shift(runs)).round(6).astype(str)
    runs.to_csv(folder / "runs.csv", index=False)
    (folder / "varied.txt").write_text(f"{name}\n")
    return folder


def flips(seed: int):
    """A few test images flip in some runs: what other numerics do."""
    return lambda runs: np.random.default_rng(seed).integers(-3, 4, len(runs)) / 1000


def build(reference: Path, runs: list[Path], out: Path) -> dict:
    assert cli.main(["calibrate", "build", *map(str, runs), "--reference", str(reference), "--out", str(out)]) == 0
    return noise.load(out)


def test_build_judges_each_run_and_keeps_its_units(reference, tmp_path):
    good = varied(tmp_path, "numerics", flips(3))
    bad = varied(tmp_path, "doctored", lambda runs: np.full(len(runs), -0.05))
    model = build(reference, [good, bad], tmp_path / "noise.json")
    first, second = model["runs"]
    truth = pd.read_csv(good / "runs.csv").test_accuracy - pd.read_csv(GOLDEN / "runs.csv").test_accuracy
    untimed = [u["difference"] for u in first["units"] if not u["time_limited"]]
    assert len(untimed) == 8 and set(np.round(untimed, 6)) <= set(truth.round(6))
    assert first["varied"] == "numerics" and first["failing"] == []
    assert second["failing"] and any("accuracy dropped 5.00 points" in line for line in second["failing"])
    assert calibrate.direct(model) == pytest.approx(
        {"runs": 2, "failed": 1, "rate": 0.5, "low": 0.0126, "high": 0.9874}, abs=1e-4
    )  # Clopper-Pearson for 1 of 2


def test_build_with_seeds_judges_each_run_on_those_seeds_alone(reference, tmp_path):
    """A tier that runs fewer seeds than its reference (CI's replay tier) is calibrated on its seeds: the seeds it
    does not run are not missing from it, and its units are its seeds' alone."""
    seed1 = varied(tmp_path, "seed 1 only", flips(3))
    runs = pd.read_csv(seed1 / "runs.csv", dtype=str, keep_default_na=False)
    runs[runs.seed == "1"].to_csv(seed1 / "runs.csv", index=False)
    out = tmp_path / "noise.json"
    argv = ["calibrate", "build", str(seed1), "--reference", str(reference), "--out", str(out)]
    assert cli.main(argv) == 0 and any("seed(s) 2 missing" in line for line in noise.load(out)["runs"][0]["failing"])
    assert cli.main([*argv, "--seeds", "1"]) == 0
    run = noise.load(out)["runs"][0]
    assert run["failing"] == [] and {u["seed"] for u in run["units"]} == {1}


def test_build_needs_runs(reference, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["calibrate", "build", "--reference", str(reference), "--out", "x.json"])
    assert exit_.value.code == 2 and "RUN_DIR" in capsys.readouterr().err


def test_resampling_keeps_each_seed_of_a_run_together(reference, tmp_path):
    """Run up moves every cell of every seed up, run down every one down: a resampled run mixes them by seed only."""
    up = varied(tmp_path, "up", lambda runs: np.full(len(runs), 0.004))
    down = varied(tmp_path, "down", lambda runs: np.full(len(runs), -0.004))
    sample = simulation.Resampled(build(reference, [up, down], tmp_path / "n.json"), 1000, np.random.default_rng(0))
    assert sample.exact and sample.count == 2**2, "two runs, two seeds: every combination"
    assert sample.batches() is sample.batches(), "the same real runs are judged at every drop"
    for template, values in sample.batches():
        for seed in (1, 2):
            # only the untimed units: a time cell that did the reference's work moves with its run too, but one
            # compared at matched work keeps its validation accuracy
            columns = [j for j, u in enumerate(template) if u.seed == seed and not u.time_limited]
            assert all(len(set(np.sign(row[columns]))) == 1 for row in values), "a seed's cells come from one run"


def test_false_alarms_stay_under_five_percent_and_power_grows_with_the_drop(reference, tmp_path):
    runs = [varied(tmp_path, f"numerics-{i}", flips(i)) for i in range(4)]
    result = calibrate.measured(build(reference, runs, tmp_path / "n.json"), 1000)
    assert result["exact"] and result["runs"] == 4**2
    assert result["false_alarm_rate"] <= 0.05 and result["direct"]["failed"] == 0
    assert result["smallest_drop"] is not None and result["power"][result["smallest_drop"]] >= 0.8
    drops = sorted(result["power"])
    assert result["power"][drops[0]] <= result["power"][drops[-1]]
    alone = result["smallest_drop_per_tuner"]
    assert set(alone) == {"baseline", "random", "hyperband", "bayesian"}
    assert all(d is None or d >= result["smallest_drop"] for d in alone.values()), "one tuner's drop is harder to see"


def test_normal_noise_holds_the_family_wise_rate_of_holm():
    """With N(0, 2 points) per unit the t-tests are exact: the family-wise rate is at most 5% (one-sided, Holm).
    The committed smoke reference: 3 seeds, so the pooled tests over per-seed means have two degrees of freedom."""
    reference = ref_io.load(REPO / "results/reference/smoke.json")
    rng = np.random.default_rng(1)
    rate = simulation.failure_rate(simulation.Normal(reference, 0.02, 4000, rng))
    assert 0.0 < rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 4000)
    assert simulation.failure_rate(simulation.Normal(reference, 0.02, 500, rng), 0.10) == 1.0


def test_normal_noise_draws_one_model_once_and_anew_for_each_figure():
    """Units that retrain one model get the same noise; every figure draws fresh runs, rounded to one image."""
    reference = ref_io.load(REPO / "results/reference/smoke.json")
    source = simulation.Normal(reference, 0.02, 50, np.random.default_rng(0))
    (template, first), (_, second) = source.batches()[0], source.batches()[0]
    assert first.shape == (50, len(template)) and not np.array_equal(first, second)
    assert np.array_equal(np.round(first, 3), first) and all(u.reference == 0.0 for u in template)
    for key in {u.key for u in template}:
        columns = [j for j, u in enumerate(template) if u.key == key]
        assert all(np.array_equal(first[:, columns[0]], first[:, j]) for j in columns)


def test_too_many_combinations_are_sampled_not_enumerated():
    """20 runs of 16 seeds make 20**16 combinations, past numpy's int64: counting them must not wrap around to a
    small number and enumerate them (that ate all memory once)."""
    unit = {"cell": "random epochs12", "time_limited": False, "measure": "test", "step": 0.001}
    model = {
        "floors": None,
        "runs": [
            {
                "units": [
                    {**unit, "seed": seed, "difference": 0.001 * run, "key": f"m{run}|{seed}"} for seed in range(16)
                ]
            }
            for run in range(20)
        ],
    }
    sample = simulation.Resampled(model, 50, np.random.default_rng(0))
    assert not sample.exact and sample.count == 50


def test_one_engine_for_false_alarms_and_power(reference, tmp_path):
    """The false-alarm rate is the engine at drop 0 and the power the same engine above it, on the same runs."""
    runs = [varied(tmp_path, f"numerics-{i}", flips(i)) for i in range(3)]
    sample = simulation.Resampled(build(reference, runs, tmp_path / "n.json"), 1000, np.random.default_rng(0))
    figures = simulation.figures(sample, per_tuner=True)
    assert figures["false_alarm_rate"] == simulation.failure_rate(sample, 0.0)
    assert all(simulation.failure_rate(sample, d) == p for d, p in figures["power"].items())
    assert simulation.failure_rate(sample, 0.10, "random") <= simulation.failure_rate(sample, 0.10)


def test_committed_noise_model_calibrates_the_committed_reference(tmp_path, capsys):
    """The CI gate's own figures, from the committed real runs (the four that set the floors, so in-sample): both
    false-alarm rates <= 5% (exit 0), every combination of them simulated."""
    out = tmp_path / "figures.json"
    code = cli.main(
        [
            "calibrate",
            "check",
            str(REPO / "results/reference/smoke.json"),
            "--noise",
            str(REPO / "results/noise/smoke.json"),
            "--json",
            str(out),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    figures = json.loads(out.read_text())
    assert figures["direct"]["runs"] >= 4 and figures["direct"]["rate"] <= 0.05
    assert figures["runs"] >= 2 ** figures["direct"]["runs"] and figures["false_alarm_rate"] <= 0.05
    assert sum(s["nonzero"] for s in figures["spreads"].values()) > 0, "the real runs moved: a spread was measured"
    assert re.search(r"direct: the gate failed \d+ of \d+ real runs", text)


def test_floors_are_the_spread_within_each_run(reference, tmp_path):
    """Each run moves every cell by one amount per run (no spread within a run): the floors measure the spread a
    t-test inside one run sees, not the differences between runs."""
    runs = [varied(tmp_path, f"shift-{i}", lambda r, i=i: np.full(len(r), 0.002 * (i + 1))) for i in range(3)]
    model = build(reference, runs, tmp_path / "n.json")
    assert model["floors"]["all cells"] == pytest.approx(0.0, abs=1e-6)
    assert model["floors"]["random, all budgets"] == pytest.approx(0.0, abs=1e-6)
    assert model["floors_from"] == "these runs (in sample)"
    assert [run["failing"] for run in model["runs"]] == [[], [], []]


def test_a_repeated_reference_is_the_mean_of_its_runs_with_the_noise_between_them(tmp_path, capsys):
    """Three repeats of one matrix: each test accuracy is their mean, and each test's noise is the spread of a seed's
    mean difference across the repeats (here known: seed 1 moves by -d, 0, +d in every cell, seed 2 stays)."""
    d = 0.004
    runs = [varied(tmp_path, f"repeat-{k}", lambda r, k=k: np.where(r.seed == "1", (k - 1) * d, 0.0)) for k in range(3)]
    out = tmp_path / "repeated.json"
    assert cli.main(["calibrate", "reference", *map(str, runs), "--out", str(out)]) == 0
    made = ref_io.load(out)
    golden = ref_io.build(resultset.load(GOLDEN))
    first = made["cells"][0]
    assert made["repeats"] == 3 and first["runs"]["1"]["test_accuracy"] == pytest.approx(
        golden["cells"][0]["runs"]["1"]["test_accuracy"]
    )
    assert len(first["runs"]["1"]["test_accuracies"]) == 3
    # seed 1: values -d, 0, +d (sd d, 2 df); seed 2: 0, 0, 0 (2 df): pooled sd = d / sqrt(2)
    assert made["noise_sd"]["all cells"] == pytest.approx(d / np.sqrt(2), abs=1e-6)
    assert made["noise_sd"]["baseline"] == pytest.approx(d / np.sqrt(2), abs=1e-6)
    # a check of one run against the mean of 3 takes sd * sqrt(1 + 1/3) as its least spread
    floors = verdicts.reference_floors(made)
    assert floors["all cells"] == pytest.approx(d / np.sqrt(2) * np.sqrt(4 / 3), abs=1e-6)
    # the noise model of fresh runs against it keeps the reference's floors (out of sample), not its own
    model = build(out, [varied(tmp_path, "fresh", flips(7))], tmp_path / "fresh.json")
    assert model["floors"] == floors and model["floors_from"] == "the reference's repeats"


def test_a_repeated_reference_refuses_one_run_or_another_matrix(tmp_path, capsys):
    assert cli.main(["calibrate", "reference", str(GOLDEN), "--out", str(tmp_path / "r.json")]) == 2
    assert "needs 2 or more runs" in capsys.readouterr().err
    other = varied(tmp_path, "other", lambda r: np.zeros(len(r)))
    runs = pd.read_csv(other / "runs.csv", dtype=str, keep_default_na=False)
    runs[runs.seed == "1"].to_csv(other / "runs.csv", index=False)
    assert cli.main(["calibrate", "reference", str(GOLDEN), str(other), "--out", str(tmp_path / "r.json")]) == 2
    assert "ran other cells or seeds" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_the_exported_value_moves_are_measured_between_every_pair_of_harmless_runs(reference, tmp_path):
    """One run lifts every cell by 2 points, another lowers every cell by 1: the largest ratio of a cell's mean is
    between those two (not against the reference), and it is what the alert threshold must clear."""
    runs = [
        varied(tmp_path, "up", lambda r: np.full(len(r), 0.02)),
        varied(tmp_path, "down", lambda r: np.full(len(r), -0.01)),
    ]
    model = build(reference, runs, tmp_path / "n.json")
    moves = calibrate.exported_moves(model, ref_io.load(reference))
    golden = pd.read_csv(GOLDEN / "runs.csv")
    means = golden.groupby(["tuner", "budget"]).test_accuracy.mean()  # the same work in every copy: all compared
    assert moves["runs"] == 3
    assert moves["largest_ratio"] == pytest.approx(max((m + 0.02) / (m - 0.01) for m in means), rel=1e-6)
