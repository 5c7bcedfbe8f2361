"""regress.py: synthetic runs.csv files in the real schema, checked against references built from them."""
from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from fmbench import regress
from fmbench.regress import RegressError
from fmbench.results import RUN_COLUMNS, ResultsError, read_runs

GOLDEN = Path(__file__).parent / "golden_regress"
SEEDS = (1, 2, 3)
MACHINE = {
    "hostname": "bench-1", "platform": "Linux-6.8-x86_64", "cpu_model": "AMD EPYC 7R13", "cpu_cores": 16,
    "gpu_model": "NVIDIA H100 80GB HBM3", "python_version": "3.11.9", "tensorflow_version": "2.21.0",
    "keras_version": "3.10.0", "keras_tuner_version": "1.4.8", "commit": "abc123def456",
}
# Reference accuracies: a small spread across seeds, different per cell.
BASE = {
    ("baseline", "none"): {1: 0.8510, 2: 0.8490, 3: 0.8530},
    ("random", "trials6"): {1: 0.8620, 2: 0.8580, 3: 0.8650},
    ("hyperband", "trials6"): {1: 0.8700, 2: 0.8660, 3: 0.8720},
}


def row(tuner: str, budget: str, seed: int, accuracy: float | None, error: str = "", **overrides) -> dict:
    trials = int(budget[len("trials"):]) if budget.startswith("trials") else None
    values = {
        "run_id": f"{tuner}-{budget}-{seed}", "started_at": "2025-01-01T00:00:00+00:00", "profile": "smoke",
        "cell": f"{tuner}-seed{seed}" if tuner == "baseline" else f"{tuner}-{budget}-seed{seed}",
        "tuner": tuner, "budget": budget, "max_trials": trials, "max_seconds": None, "seed": seed,
        "train_size": 2000, "val_size": 500, "test_size": 1000, "epochs": 2, "batch_size": 128,
        "best_hyperparameters": "{}", "best_val_accuracy": accuracy, "test_accuracy": accuracy, "test_loss": 0.4,
        "search_seconds": 10.0, "retrain_seconds": 2.0, "evaluate_seconds": 0.1, "wall_seconds": 12.1,
        "trials_completed": trials or 0, "trials_failed": 0, "search_epochs": 2 * (trials or 0), "retrain_epochs": 2,
        "stopped_by": "error" if error else ("trials" if trials else "exhausted"), "error": error, **MACHINE,
    }
    values.update(overrides)
    return {column: values.get(column) for column in RUN_COLUMNS}


def write_runs(directory: Path, cells: dict, failed: dict | None = None, **overrides) -> Path:
    """runs.csv in the real schema, written and read back through results.py (so the round trip is tested too)."""
    rows = [row(tuner, budget, seed, acc, **overrides) for (tuner, budget), accs in cells.items() for seed, acc in accs.items()]
    rows += [row(tuner, budget, seed, None, error=err, **overrides) for (tuner, budget, seed), err in (failed or {}).items()]
    pd.DataFrame(rows, columns=RUN_COLUMNS).to_csv(directory / "runs.csv", index=False)
    return directory


def shifted(cells: dict, key: tuple, deltas: dict[int, float]) -> dict:
    out = {k: dict(v) for k, v in cells.items()}
    out[key] = {seed: acc + deltas[seed] for seed, acc in cells[key].items()}
    return out


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    regress.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A reference recorded from BASE; returns (current results dir, reference path)."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    reference = tmp_path / "reference" / "smoke.json"
    regress.write_reference(reference, regress.build_reference(read_runs(write_runs(_dir(tmp_path / "ref"), BASE))))
    return _dir(tmp_path / "current"), reference


def _dir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def check(results: Path, reference: Path, *extra) -> int:
    return regress.command(parse(results, "--reference", reference, *extra))


def verdicts(results: Path, reference: Path) -> dict[str, str]:
    return {c.cell: c.verdict for c in regress.compare(read_runs(results), regress.load_reference(reference))}


# --- verdicts ------------------------------------------------------------------------------

def test_real_drop_is_a_regression_naming_tuner_and_budget(setup, capsys):
    results, reference = setup
    write_runs(results, shifted(BASE, ("random", "trials6"), {1: -0.031, 2: -0.029, 3: -0.030}))
    assert check(results, reference) == 1
    out = capsys.readouterr().out
    assert "Verdict: REGRESSION in 2 of 4 cells: random trials6, all cells" in out
    assert "- random trials6: mean test accuracy" in out
    assert verdicts(results, reference) == {"baseline": "ok", "random trials6": "REGRESSION", "hyperband trials6": "ok",
                                            "all cells": "REGRESSION"}


def test_small_drop_in_every_cell_is_caught_by_the_pooled_comparison(setup, capsys):
    results, reference = setup
    cells = BASE
    # Each cell drops 1 to 4 points with a spread no 3-seed test can resolve; together 9 pairs do.
    drops = {("baseline", "none"): {1: -0.04, 2: -0.01, 3: -0.02}, ("random", "trials6"): {1: -0.01, 2: -0.04, 3: -0.02},
             ("hyperband", "trials6"): {1: -0.02, 2: -0.01, 3: -0.04}}
    for key, deltas in drops.items():
        cells = shifted(cells, key, deltas)
    assert check(results := write_runs(results, cells), reference) == 1
    found = verdicts(results, reference)
    assert found.pop("all cells") == "REGRESSION" and set(found.values()) == {"ok"}
    diffs = [d for deltas in drops.values() for d in deltas.values()]
    [pooled] = [c for c in regress.compare(read_runs(results), regress.load_reference(reference)) if c.tuner == "all cells"]
    expected = scipy_stats.t.ppf(0.95, 8) * np.std(diffs, ddof=1) / math.sqrt(9)
    assert pooled.difference == pytest.approx(np.mean(diffs), abs=1e-12)
    assert pooled.margin == pytest.approx(max(expected, regress.DEFAULT_FLOOR))
    assert pooled.difference < -pooled.margin


def test_time_limited_cells_stay_out_of_the_pooled_comparison(tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    reference_cells = {**BASE, ("random", "time5s"): {1: 0.80, 2: 0.81, 3: 0.82}}
    reference = tmp_path / "ref.json"
    ref_runs = read_runs(write_runs(_dir(tmp_path / "ref"), reference_cells, max_seconds=None))
    # time5s rows carry their time limit; everything else is trial-limited
    ref_runs.loc[ref_runs.budget == "time5s", "max_seconds"] = 5.0
    regress.write_reference(reference, regress.build_reference(ref_runs))
    current = ref_runs.copy()
    current.loc[current.budget == "time5s", "test_accuracy"] -= 0.05  # a slower machine fits fewer trials
    [pooled] = [c for c in regress.compare(current, regress.load_reference(reference)) if c.tuner == "all cells"]
    assert pooled.method == "paired, 9 pairs" and pooled.difference == pytest.approx(0.0)


def test_change_inside_the_noise_passes_though_beyond_the_floor(setup, capsys):
    results, reference = setup
    # Paired differences +1, -3, -4 points: mean -2 points (beyond the 1-point floor) but sd 2.6 points.
    write_runs(results, shifted(BASE, ("random", "trials6"), {1: 0.01, 2: -0.03, 3: -0.04}))
    assert check(results, reference) == 0
    [cell] = [c for c in regress.compare(read_runs(results), regress.load_reference(reference)) if c.tuner == "random"]
    assert cell.verdict == "ok" and cell.method == "paired"
    assert cell.difference == pytest.approx(-0.02)
    sd = np.std([0.01, -0.03, -0.04], ddof=1)
    assert cell.margin == pytest.approx(scipy_stats.t.ppf(0.95, 2) * sd / math.sqrt(3)) and cell.margin > 0.02
    assert "Verdict: ok" in capsys.readouterr().out


def test_improvement_passes_and_is_reported(setup, capsys):
    results, reference = setup
    write_runs(results, shifted(BASE, ("hyperband", "trials6"), {1: 0.03, 2: 0.031, 3: 0.029}))
    assert check(results, reference) == 0
    out = capsys.readouterr().out
    assert "2 improved: hyperband trials6, all cells" in out
    assert verdicts(results, reference)["hyperband trials6"] == "improved"


def test_floor_option_sets_the_smallest_margin(setup):
    results, reference = setup
    write_runs(results, shifted(BASE, ("random", "trials6"), {1: -0.031, 2: -0.029, 3: -0.030}))
    assert check(results, reference, "--floor", "0.05") == 0
    with pytest.raises(SystemExit):
        parse(results, "--reference", reference, "--floor", "5")


def test_failed_run_is_a_regression_naming_the_cell(setup, capsys):
    results, reference = setup
    cells = {k: dict(v) for k, v in BASE.items()}
    del cells[("hyperband", "trials6")][2]
    write_runs(results, cells, failed={("hyperband", "trials6", 2): "ResourceExhaustedError: OOM"})
    assert check(results, reference) == 1
    out = capsys.readouterr().out
    assert "hyperband trials6: failed run(s) seed 2: ResourceExhaustedError: OOM" in out
    assert verdicts(results, reference)["hyperband trials6"] == "REGRESSION"


def test_cell_missing_from_results_fails(setup, capsys):
    results, reference = setup
    write_runs(results, {k: v for k, v in BASE.items() if k[0] != "random"})
    assert check(results, reference) == 1
    out = capsys.readouterr().out
    assert "random trials6: in the reference but not in the results" in out
    assert verdicts(results, reference)["random trials6"] == "missing"


def test_rerun_row_supersedes_an_earlier_failure(setup):
    results, reference = setup
    rows = [row("random", "trials6", 1, None, error="boom")]
    rows += [row(t, b, s, a) for (t, b), accs in BASE.items() for s, a in accs.items()]
    pd.DataFrame(rows, columns=RUN_COLUMNS).to_csv(results / "runs.csv", index=False)
    assert check(results, reference) == 0


# --- the margin ----------------------------------------------------------------------------

def test_paired_margin_is_the_one_sided_95_critical_drop():
    ref = {1: 0.85, 2: 0.86, 3: 0.84, 4: 0.855}
    noise = {1: 0.02, 2: -0.015, 3: 0.01, 4: -0.02}
    margin, detectable, method = regress.noise_margin(ref, {s: ref[s] + noise[s] for s in ref}, floor=0.0)
    assert method == "paired"
    # A mean drop of exactly the margin sits on the one-sided 5% boundary of a paired t-test.
    shift = -margin - np.mean(list(noise.values()))
    cur = [ref[s] + noise[s] + shift for s in ref]
    assert scipy_stats.ttest_rel(cur, list(ref.values()), alternative="less").pvalue == pytest.approx(0.05)
    se = np.std(list(noise.values()), ddof=1) / 2
    assert detectable == pytest.approx((scipy_stats.t.ppf(0.95, 3) + scipy_stats.t.ppf(0.80, 3)) * se)


def test_unpaired_margin_is_welch():
    ref, cur = {1: 0.85, 2: 0.86, 3: 0.84}, {4: 0.80, 5: 0.83, 6: 0.86, 7: 0.82}
    margin, _, method = regress.noise_margin(ref, cur, floor=0.0)
    assert method == "Welch"
    shift = np.mean(list(ref.values())) - margin - np.mean(list(cur.values()))
    moved = [a + shift for a in cur.values()]
    p = scipy_stats.ttest_ind(moved, list(ref.values()), equal_var=False, alternative="less").pvalue
    assert p == pytest.approx(0.05)


def test_margin_never_below_the_floor_and_single_seed_uses_the_floor_alone(tmp_path, capsys, monkeypatch):
    assert regress.noise_margin({1: 0.85, 2: 0.85}, {1: 0.84, 2: 0.84}, floor=0.01)[:2] == (0.01, 0.01)
    assert regress.noise_margin({1: 0.85}, {1: 0.80}, floor=0.01) == (0.01, 0.01, "floor only (one seed, no spread)")
    margin, _, method = regress.noise_margin({1: 0.85, 2: 0.80, 3: 0.82}, {9: 0.83}, floor=0.0)
    assert method == "pooled" and margin > 0
    # End to end: one seed on both sides, a 2-point drop beyond the floor.
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    reference = tmp_path / "one.json"
    assert check(write_runs(_dir(tmp_path / "ref"), {k: {1: v[1]} for k, v in BASE.items()}), reference, "--update-reference") == 0
    results = write_runs(_dir(tmp_path / "now"), {k: {1: v[1] - (0.02 if k[0] == "random" else 0)} for k, v in BASE.items()})
    assert check(results, reference) == 1
    out = capsys.readouterr().out
    assert "floor only (one seed, no spread)" in out and "With one seed there is no spread" in out


# --- the reference -------------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    (None, "no such reference"),
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "something-else", "version": 1}), "not an fmbench reference"),
    (json.dumps([1, 2]), "not an fmbench reference"),
    (json.dumps({"format": "fmbench-reference", "version": 2}), "reference version 2"),
    ("MALFORMED_CELL", "malformed reference"),
])
def test_bad_reference_is_a_one_line_error(setup, content, expected):
    results, reference = setup
    write_runs(results, BASE)
    if content is None:
        reference.unlink()
    elif content == "MALFORMED_CELL":
        data = json.loads(reference.read_text())
        data["cells"][0]["test_accuracy"] = {"1": "n/a"}
        reference.write_text(json.dumps(data))
    else:
        reference.write_text(content)
    with pytest.raises(RegressError) as info:
        check(results, reference)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert str(reference) in str(info.value)


@pytest.mark.parametrize("overrides, cells, expected", [
    ({"profile": "quick"}, BASE, "results are profile quick"),
    ({"train_size": 5000}, BASE, "train=5000"),
    ({"test_size": None}, BASE, "test=None"),
    ({"epochs": 3}, BASE, "epochs=3"),
    ({}, {**BASE, ("random", "trials20"): {1: 0.87, 2: 0.87, 3: 0.87}}, "budgets trials20, trials6"),
])
def test_mismatched_reference_is_an_error_not_a_silent_pass(setup, overrides, cells, expected):
    results, reference = setup
    write_runs(results, cells, **overrides)
    with pytest.raises(RegressError) as info:
        check(results, reference)
    message = str(info.value)
    assert expected in message and "reference is profile smoke with train=2000" in message
    assert "compare like with like or --update-reference" in message and "\n" not in message


def test_machine_or_library_change_is_a_warning_not_an_error(setup, capsys, monkeypatch):
    results, reference = setup
    write_runs(results, BASE, gpu_model="no GPU", tensorflow_version="2.20.0")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert check(results, reference) == 0
    out = capsys.readouterr().out
    assert "machine differ from the reference: gpu_model 'no GPU' (reference 'NVIDIA H100 80GB HBM3')" in out
    assert "tensorflow '2.20.0' (reference '2.21.0')" in out
    warnings = [line for line in out.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 2 and "::error" not in out
    assert out.index("> **warning:**") < out.index("| cell")
    assert "time budgets" not in out  # BASE has trial budgets only


def test_machine_change_warns_that_time_budgets_bought_other_work(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    cells = {("baseline", "none"): BASE[("baseline", "none")], ("random", "time6s"): BASE[("random", "trials6")]}
    reference = tmp_path / "ref.json"
    check(write_runs(_dir(tmp_path / "a"), cells), reference, "--update-reference")
    assert check(write_runs(_dir(tmp_path / "b"), cells, cpu_model="Intel Xeon 8370C"), reference) == 0
    assert "time budgets (time6s) buy a different amount of search there" in capsys.readouterr().out


def test_update_reference_writes_a_valid_reference_that_checks_clean(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    results = write_runs(_dir(tmp_path / "smoke"), BASE)
    reference = tmp_path / "reference" / "smoke.json"
    assert check(results, reference, "--update-reference") == 0
    data = regress.load_reference(reference)
    assert (data["format"], data["version"], data["profile"]) == ("fmbench-reference", 1, "smoke")
    assert data["data"] == {"train": 2000, "val": 500, "test": 1000} and data["epochs"] == 2 and data["batch_size"] == 128
    assert data["budgets"] == ["trials6"] and data["seeds"] == [1, 2, 3]
    assert data["libraries"] == {"python": "3.11.9", "tensorflow": "2.21.0", "keras": "3.10.0", "keras-tuner": "1.4.8"}
    assert data["machine"] == {"cpu_model": "AMD EPYC 7R13", "gpu_model": "NVIDIA H100 80GB HBM3", "hostname": "bench-1"}
    assert data["commit"] == "abc123def456" and data["created_at"]
    cell = next(c for c in data["cells"] if c["tuner"] == "random")
    assert cell["test_accuracy"] == {"1": 0.862, "2": 0.858, "3": 0.865}
    assert cell["mean"] == pytest.approx(np.mean([0.862, 0.858, 0.865]))
    assert cell["std"] == pytest.approx(np.std([0.862, 0.858, 0.865], ddof=1))
    assert sorted(p.name for p in reference.parent.iterdir()) == ["smoke.json"]  # no temp file left
    capsys.readouterr()
    assert check(results, reference) == 0
    assert set(verdicts(results, reference).values()) == {"ok"}


def test_update_reference_refuses_failed_runs(tmp_path):
    results = write_runs(_dir(tmp_path / "smoke"), BASE, failed={("bayesian", "trials6", 1): "boom"})
    with pytest.raises(RegressError, match="bayesian trials6 seed 1"):
        check(results, tmp_path / "ref.json", "--update-reference")
    assert not (tmp_path / "ref.json").exists()


def test_missing_or_empty_results_are_errors(setup):
    results, reference = setup
    with pytest.raises(ResultsError):
        check(results, reference)
    pd.DataFrame(columns=RUN_COLUMNS).to_csv(results / "runs.csv", index=False)
    with pytest.raises(RegressError, match="no runs"):
        check(results, reference)


# --- CI outputs ------------------------------------------------------------------------------

def test_github_annotations_and_step_summary(setup, capsys, monkeypatch, tmp_path):
    results, reference = setup
    write_runs(results, shifted(BASE, ("random", "trials6"), {1: -0.031, 2: -0.029, 3: -0.030}))
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert check(results, reference) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::error")]
    assert len(errors) == 2
    assert errors[0].startswith("::error title=Accuracy regression%3A random trials6::random trials6: mean test accuracy")
    assert errors[1].startswith("::error title=Accuracy regression%3A all cells::all cells: mean test accuracy")
    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, not overwritten
    assert "| cell" in text and "| random trials6" in text and "REGRESSION" in text
    assert "**Verdict: REGRESSION in 2 of 4 cells: random trials6, all cells**" in text


def test_no_annotations_outside_github_actions(setup, capsys):
    results, reference = setup
    write_runs(results, shifted(BASE, ("random", "trials6"), {1: -0.031, 2: -0.029, 3: -0.030}))
    assert check(results, reference) == 1
    assert "::error" not in capsys.readouterr().out


def test_annotation_escaping():
    assert regress._escape("50%\nnext") == "50%25%0Anext"
    assert regress._escape("a: b, c", property_value=True) == "a%3A b%2C c"


def test_export_json_is_custom_bigger_is_better(setup):
    results, reference = setup
    cells = {k: dict(v) for k, v in BASE.items()}
    del cells[("random", "trials6")][3]
    write_runs(results, cells, failed={("random", "trials6", 3): "boom"})
    out = results / "bench.json"
    assert check(results, reference, "--export-json", out) == 1
    entries = json.loads(out.read_text())
    assert [e["name"] for e in entries] == ["baseline test accuracy", "hyperband trials6 test accuracy", "random trials6 test accuracy"]
    random = entries[2]
    assert set(random) == {"name", "unit", "value", "range", "extra"} and random["unit"] == "%"
    assert random["value"] == pytest.approx(100 * np.mean([0.862, 0.858]))
    assert random["range"] == f"± {100 * np.std([0.862, 0.858], ddof=1):.4f}"
    assert random["extra"] == "seeds: 1, 2; n=2"  # the failed seed is left out


# --- golden files ------------------------------------------------------------------------------

def test_golden_results_check_clean_against_golden_reference(tmp_path, capsys, monkeypatch):
    """Stored files in the real schema: catches a change to runs.csv columns or the reference format."""
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    results = tmp_path / "smoke"
    shutil.copytree(GOLDEN / "smoke", results)
    assert check(results, GOLDEN / "reference-smoke.json") == 0
    out = capsys.readouterr().out
    assert "| baseline" in out and "| bayesian trials3" in out and "Verdict: ok, no regression in 5 cells" in out
    shutil.copy(GOLDEN / "runs-drop.csv", results / "runs.csv")
    assert check(results, GOLDEN / "reference-smoke.json") == 1
    assert "Verdict: REGRESSION in 1 of 5 cells: bayesian trials3" in capsys.readouterr().out
