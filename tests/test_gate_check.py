"""The CI gate on a real smoke run (tests/golden_regress/smoke, runs.csv + trials.csv as the suite wrote them),
doctored the way a change or another machine would move it: what must fail fails (exit 1), what must pass passes."""

from __future__ import annotations

import argparse
import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fmbench import cli, resultset, stats
from fmbench.gate import check as gate_check
from fmbench.gate import decision, evidence
from fmbench.gate import reference as ref_io

GOLDEN = Path(__file__).parent / "golden_regress"


@pytest.fixture(autouse=True)
def _no_github(monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def golden(tmp_path) -> Path:
    shutil.copytree(GOLDEN / "smoke", tmp_path / "current")
    return tmp_path / "current"


@pytest.fixture
def reference(tmp_path) -> Path:
    path = tmp_path / "reference.json"
    ref_io.write(path, ref_io.build(resultset.load(GOLDEN / "smoke")))
    return path


def tables(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    read = lambda name: pd.read_csv(directory / name, dtype=str, keep_default_na=False)  # noqa: E731 - text stays text
    return read("runs.csv"), read("trials.csv")


def save(directory: Path, runs: pd.DataFrame, trials: pd.DataFrame) -> Path:
    runs.to_csv(directory / "runs.csv", index=False)
    trials.to_csv(directory / "trials.csv", index=False)
    return directory


def shift(frame: pd.DataFrame, column: str, rows, delta) -> None:
    frame.loc[rows, column] = (frame.loc[rows, column].astype(float) + delta).round(6).astype(str)


def check(results, reference: Path, capsys=None) -> tuple[int, str]:
    code = cli.main(
        ["check", *map(str, results if isinstance(results, list) else [results]), "--reference", str(reference)]
    )
    return code, capsys.readouterr().out if capsys else ""


def table_rows(out: str) -> dict[str, dict[str, str]]:
    lines = [line for line in out.splitlines() if line.startswith("|")]
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    return {
        cells[0]: dict(zip(headers, cells))
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])
    }


def resample_speed(directory: Path, factor: float, accuracy_delta: float) -> Path:
    """The same code on a machine `factor` times as fast: time-limited runs fit other trials, find other models."""
    runs, trials = tables(directory)
    kept = []
    for i, run in runs[runs.max_seconds != ""].iterrows():
        own = trials[trials.run_id == run.run_id]
        if factor < 1:  # fewer trials fit; the last one is cut by the deadline
            own = own.iloc[: max(1, int(len(own) * factor + 0.5))].copy()
            last = own.index[-1]
            own.loc[last, "epochs"] = str(max(1, int(own.loc[last, "epochs"]) - 1))
        else:  # the cut trial finishes and more follow
            own = own.copy()
            own.loc[own.index[-1], "epochs"] = "2"
            extra = own.iloc[[0] * int(factor)].copy()
            extra["trial_id"] = [f"9{k}" for k in range(len(extra))]
            extra["hyperparameters"] = [f'{{"units_0": {64 * (k + 1)}}}' for k in range(len(extra))]
            own = pd.concat([own, extra])
        kept.append(own)
        runs.loc[i, "trials_completed"] = str(len(own))
        runs.loc[i, "search_epochs"] = str(own.epochs.astype(int).sum())
    timed = runs.max_seconds != ""
    shift(runs, "test_accuracy", timed, accuracy_delta)
    trials = pd.concat([trials[~trials.run_id.isin(runs[timed].run_id)], *kept])
    return save(directory, runs, trials)


# --- caught and not caught -------------------------------------------------------------------------


def test_unchanged_results_pass_and_duplicates_are_counted_once(golden, reference, capsys):
    code, out = check(golden, reference, capsys)
    assert code == 0, out
    rows = table_rows(out)
    # 14 runs, 2 seeds: the trial-limited tuners retrain the same models, so all cells hold far fewer distinct units.
    assert rows["all cells"]["units"] == "6 (dup 8)"
    assert "Verdict: ok" in out


def test_a_change_that_makes_every_model_worse_fails(golden, reference, capsys):
    runs, trials = tables(golden)
    shift(runs, "test_accuracy", runs.index, -0.03)
    shift(runs, "best_val_accuracy", runs.index, -0.03)
    shift(trials, "val_accuracy", trials.index, -0.03)
    code, out = check(save(golden, runs, trials), reference, capsys)
    assert code == 1
    assert table_rows(out)["all cells"]["verdict"] == "REGRESSION"
    assert "all cells: accuracy dropped 3.00 points" in out


def test_a_drop_confined_to_one_tuner_fails_in_that_tuners_row(golden, reference, capsys):
    """A change to one tuner's search logic moves its cells alone: its own row pools them over seeds and decides;
    its cells' rows are shown, judged within it."""
    runs, trials = tables(golden)
    shift(runs, "test_accuracy", runs.tuner == "random", -0.05)
    code, out = check(save(golden, runs, trials), reference, capsys)
    assert code == 1
    rows = table_rows(out)
    assert rows["random, all budgets"]["verdict"] == "REGRESSION"
    assert rows["random trials3"]["verdict"] == rows["random time5s"]["verdict"] == "in pooled"
    assert rows["hyperband, all budgets"]["verdict"] == rows["baseline"]["verdict"] == "ok"
    assert "random, all budgets: accuracy dropped 5.00 points" in out


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_a_slower_or_faster_machine_passes_and_shows_as_speed(golden, reference, capsys, factor):
    # The deadline buys other work and other models (test accuracy 5 points lower): not comparable, not a drop.
    code, out = check(resample_speed(golden, factor, -0.05), reference, capsys)
    assert code == 0, out
    rows = table_rows(out)
    assert rows["random time5s"]["measure"] == "val"  # compared on the trials both runs share
    assert ("Speed: time-limited cells completed fewer trials" in out) == (factor < 1)


def test_unchanged_code_with_perturbed_numerics_passes(golden, reference, capsys):
    """Other threads, oneDNN or a GPU move accuracy by a few test images up and down."""
    runs, trials = tables(golden)
    rng = np.random.default_rng(7)
    shift(runs, "test_accuracy", runs.index, rng.integers(-6, 7, len(runs)) / 1000)
    shift(trials, "val_accuracy", trials.index, rng.integers(-6, 7, len(trials)) / 1000)
    code, out = check(save(golden, runs, trials), reference, capsys)
    assert code == 0, out


def test_failed_run_and_missing_seed_fail_naming_the_cell(golden, reference, capsys):
    runs, trials = tables(golden)
    runs.loc[runs.cell == "bayesian-trials3-seed2", ["test_accuracy", "stopped_by", "error"]] = ["", "error", "OOM"]
    runs = runs[runs.cell != "random-time5s-seed1"]
    code, out = check(save(golden, runs, trials), reference, capsys)
    assert code == 1
    assert "bayesian trials3: failed run(s) seed 2: OOM" in out
    assert "random time5s: seed(s) 1 missing from the results" in out


def test_rerun_supersedes_a_failed_row_left_in_the_file(golden, reference, capsys):
    runs, trials = tables(golden)
    failed = runs[runs.cell == "bayesian-trials3-seed2"].copy()
    failed[["run_id", "started_at", "test_accuracy", "stopped_by", "error"]] = [
        "early",
        "2000-01-01T00:00:00+00:00",
        "",
        "error",
        "OOM",
    ]
    code, out = check(save(golden, pd.concat([failed, runs]), trials), reference, capsys)
    assert code == 0, out


def test_shards_checked_together_equal_the_whole(golden, reference, tmp_path, capsys):
    runs, trials = tables(golden)
    shards = []
    for k in (1, 2):
        shard = tmp_path / f"shard{k}"
        shard.mkdir()
        part = runs[runs.seed == str(k)]
        shards.append(save(shard, part, trials[trials.run_id.isin(part.run_id)]))
    whole = check(golden, reference, capsys)
    assert check(shards, reference, capsys) == whole
    code, out = check(shards[:1], reference, capsys)
    assert code == 1 and "missing from the results (a shard not merged?)" in out


def test_a_run_of_fewer_seeds_is_judged_on_them_with_seeds_and_fails_without(golden, reference, tmp_path, capsys):
    """CI's replay tier runs seeds 1-100 of a 200-seed reference: --seeds judges those alone, names the rest."""
    runs, trials = tables(golden)
    part = runs[runs.seed == "1"]
    one = tmp_path / "seed1"
    one.mkdir()
    save(one, part, trials[trials.run_id.isin(part.run_id)])
    code, out = check(one, reference, capsys)
    assert code == 1 and "seed(s) 2 missing" in out
    assert cli.main(["check", str(one), "--reference", str(reference), "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert table_rows(out)["baseline"]["seeds"] == "1" and "Verdict: ok" in out
    # seed 2 ran but is left out: shown as not judged, and a drop there changes nothing
    shift(runs, "test_accuracy", runs.seed == "2", -0.05)
    assert cli.main(["check", str(save(golden, runs, trials)), "--reference", str(reference), "--seeds", "1"]) == 0
    assert table_rows(capsys.readouterr().out)["baseline"]["seeds"] == "1 (not in the reference: 2)"


@pytest.mark.parametrize(
    "seeds, message",
    [("3", "seed(s) 3 not in the reference; choose --seeds among its 2 seeds (1 to 2)"), ("1-x", "--seeds must be")],
)
def test_seeds_outside_the_reference_or_malformed_are_one_line_errors(golden, reference, capsys, seeds, message):
    assert cli.main(["check", str(golden), "--reference", str(reference), "--seeds", seeds]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# --- the decision's parts ----------------------------------------------------------------------------


def test_holm_steps_down_and_stops_at_the_first_kept():
    levels, rejected = stats.holm(np.array([[0.01, 0.04, 0.02, 0.005]]))
    assert levels[0].tolist() == pytest.approx([0.05 / 3, 0.05, 0.05 / 2, 0.05 / 4])
    assert rejected[0].tolist() == [True, True, True, True]
    _, rejected = stats.holm(np.array([[0.02, 0.04, 0.03, 0.005]]))
    assert rejected[0].tolist() == [False, False, False, True]  # 0.02 > 0.05/3 stops the step-down


def test_p_drop_is_scipys_paired_test_with_the_spread_at_least_one_image():
    from scipy import stats as sps

    ref, cur = np.array([[0.70, 0.65, 0.80, 0.75]]), np.array([[0.69, 0.66, 0.77, 0.73]])
    seeds = [1, 2, 3, 4]
    assert decision.p_drops(ref, cur, 0.001, seeds)[0] == pytest.approx(
        sps.ttest_rel(cur[0], ref[0], alternative="less").pvalue
    )
    # identical differences: no spread seen, so it is taken as one image of a 1,000-image test set
    p = decision.p_drops(ref[:, :3], ref[:, :3] - 0.01, 0.001, seeds[:3])[0]
    assert p == pytest.approx(sps.t.cdf(-0.01 / (0.001 / np.sqrt(3)), 2)) and p < 0.01
    # one image in three units: not evidence
    assert decision.p_drops(ref[:, :3], ref[:, :3] - 0.001, 0.001, seeds[:3])[0] > 0.05
    assert decision.p_drops(ref, ref, 0.001, seeds)[0] == 0.5
    # two units of one seed are one value: the test is over the seeds' means
    pooled = decision.p_drops(ref, cur, 0.001, [1, 1, 2, 2])[0]
    assert pooled == pytest.approx(
        sps.ttest_rel(cur[0].reshape(2, 2).mean(1), ref[0].reshape(2, 2).mean(1), alternative="less").pvalue
    )


def test_matched_trials_stop_at_the_first_other_configuration_or_cut_trial():
    ref = [["a", 2, 0.6], ["b", 2, 0.7], ["c", 2, 0.5]]
    assert evidence.matched_trials(ref, [["a", 2, 0.6], ["b", 1, 0.3]]) == 1
    assert evidence.matched_trials(ref, ref + [["d", 2, 0.9]]) == 3
    assert evidence.matched_trials(ref, [["x", 2, 0.6]]) == 0


# --- input, output ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other"}', "not an fmbench reference"),
        ('{"format": "fmbench-reference", "version": 1}', "reference version 1, this fmbench reads version 2"),
    ],
)
def test_bad_reference_is_a_one_line_error(golden, tmp_path, capsys, content, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert cli.main(["check", str(golden), "--reference", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1


def test_another_profile_is_an_error_and_another_machine_a_warning(golden, reference, capsys):
    data = json.loads(reference.read_text())
    data["machine"]["cpu_model"] = "Intel Xeon"
    reference.write_text(json.dumps(data))
    code, out = check(golden, reference, capsys)
    assert code == 0 and "warning:** machine differ from the reference" in out
    epochs, data["epochs"] = data["epochs"], 9
    reference.write_text(json.dumps(data))
    assert cli.main(["check", str(golden), "--reference", str(reference)]) == 2
    assert "compare like with like" in capsys.readouterr().err
    data["epochs"], data["trainer"] = epochs, "replay"  # a replay's reference
    reference.write_text(json.dumps(data))
    assert cli.main(["check", str(golden), "--reference", str(reference)]) == 2
    err = capsys.readouterr().err
    assert "trained; reference is" in err and "replayed from a table; compare like with like" in err


def test_update_reference_refuses_failed_runs_and_round_trips(golden, tmp_path, capsys):
    out = tmp_path / "new.json"
    assert cli.main(["check", str(golden), "--reference", str(out), "--update-reference"]) == 0
    assert ref_io.load(out)["cells"][0]["runs"]["1"]["trials_completed"] == 0
    runs, trials = tables(golden)
    runs.loc[0, ["test_accuracy", "stopped_by", "error"]] = ["", "error", "boom"]
    save(golden, runs, trials)
    assert cli.main(["check", str(golden), "--reference", str(out), "--update-reference"]) == 2
    assert "cannot record a reference from failed runs" in capsys.readouterr().err


def test_github_annotations_summary_and_export(golden, reference, tmp_path, capsys, monkeypatch):
    runs, trials = tables(golden)
    shift(runs, "test_accuracy", runs.index, -0.05)
    save(golden, runs, trials)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    export = tmp_path / "bench.json"
    assert cli.main(["check", str(golden), "--reference", str(reference), "--export-json", str(export)]) == 1
    out = capsys.readouterr().out
    assert "::error title=Accuracy regression%3A all cells::all cells: accuracy dropped" in out
    assert "## fmbench check" in (tmp_path / "summary.md").read_text()
    entries = json.loads(export.read_text())
    assert entries[0]["name"] == "baseline test accuracy" and entries[0]["unit"] == "%"
    assert gate_check._escape("a:b,c", True) == "a%3Ab%2Cc"


def test_add_arguments_accepts_several_folders():
    parser = argparse.ArgumentParser()
    gate_check.add_arguments(parser)
    assert parser.parse_args(["a", "b", "--reference", "r.json"]).results == [Path("a"), Path("b")]


def test_the_decision_and_the_printed_figures_are_one_test():
    """p_drops (vectorised, for the simulation) and stats.paired_difference (printed) give the same p."""
    from fmbench import stats

    rng = np.random.default_rng(5)
    for spread in (0.0, 0.0004, 0.02):
        ref = rng.uniform(0.6, 0.8, size=(1, 5)).round(3)
        cur = (ref + rng.normal(-0.01, spread, size=ref.shape)).round(3)
        difference = stats.paired_difference(
            dict(enumerate(cur[0])), dict(enumerate(ref[0])), alternative="less", step=0.001
        )
        assert decision.p_drops(ref, cur, 0.001, list(range(5)))[0] == pytest.approx(difference.p_value)
        assert difference.floored == (np.std(cur - ref, ddof=1) < 0.001)


def test_a_check_that_cannot_judge_exports_nothing(golden, reference, tmp_path, capsys):
    data = json.loads(reference.read_text())
    data["epochs"] = 9  # another experiment: the check refuses it (exit 2)
    reference.write_text(json.dumps(data))
    export = tmp_path / "bench.json"
    assert cli.main(["check", str(golden), "--reference", str(reference), "--export-json", str(export)]) == 2
    assert not export.exists(), "a refused check must not leave a file that looks like a result"


def test_a_seed_whose_cells_all_moved_together_is_one_piece_of_evidence(golden, reference, capsys):
    """A harmless change of random draws moves every cell of a seed together (they share its weights' stream):
    the pooled rows count each seed once, so one seed 2 points down and one unchanged is no regression."""
    runs, trials = tables(golden)
    shift(runs, "test_accuracy", runs.seed == "1", -0.02)
    code, out = check(save(golden, runs, trials), reference, capsys)
    assert code == 0, out
    assert table_rows(out)["all cells"]["verdict"] == "ok"
    units = [
        evidence.Unit("c", s, False, "test", 0.75, 0.75 - 0.02 * (s == 1), f"{s}|{k}", 0.001)
        for s in (1, 2)
        for k in range(7)
    ]
    pooled = next(t for t in decision.decide(units) if t.name == decision.ALL_CELLS)
    assert pooled.difference.n == 2, "two seeds, not fourteen units"


def test_a_measured_floor_keeps_three_agreeing_seeds_from_failing_a_cell():
    """Three seeds 1.5 points down that happen to agree to 0.1 point: alone, the cell's t-test believes the tiny
    spread and fails; with the spread real harmless runs showed (2 points), it is no evidence."""
    units = [evidence.Unit("c", s, False, "test", 0.75, 0.735 + 0.0005 * s, f"c|{s}", 0.001) for s in (1, 2, 3)]
    units += [
        evidence.Unit(f"d{k}", s, False, "test", 0.75, 0.75, f"d{k}|{s}", 0.001) for k in range(4) for s in (1, 2, 3)
    ]
    cell = lambda tests: next(t for t in tests if t.name == "c")  # noqa: E731 - one-line helper
    assert cell(decision.decide(units)).rejected
    floors = {"c": 0.02, decision.ALL_CELLS: 0.005}
    assert not any(t.rejected for t in decision.decide(units, floors=floors))
    assert cell(decision.decide(units, floors=floors)).difference.floored


def test_a_noise_model_of_another_reference_is_refused(golden, reference, tmp_path, capsys):
    model = tmp_path / "noise.json"
    model.write_text(
        json.dumps(
            {
                "format": "fmbench-noise",
                "version": 3,
                "profile": "smoke",
                "reference_commit": "0000000",
                "floors": {"random, all budgets": 0.02},
                "floors_from": "these runs (in sample)",
                "runs": [],
            }
        )
    )
    code = cli.main(["check", str(golden), "--reference", str(reference), "--noise", str(model)])
    assert code == 2 and "measured against a smoke reference of commit 0000000" in capsys.readouterr().err


def test_no_gate_module_imports_the_cli_module():
    """`fmbench check`'s module renders and runs the command; the gate's library modules (calibrate included) share
    the verdicts through fmbench.gate.verdicts, so a change to the CLI's output cannot change a calibration."""
    for path in sorted(Path(gate_check.__file__).parent.glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
        assert "fmbench.gate.check" not in imported or path.name == "check.py", f"{path.name} imports the CLI module"


def test_results_on_another_backend_are_refused_against_the_reference(golden, reference, capsys):
    runs, trials = tables(golden)
    runs["keras_backend"] = "jax"
    save(golden, runs, trials)
    assert cli.main(["check", str(golden), "--reference", str(reference)]) == 2
    assert "Keras on jax, trained; reference is" in capsys.readouterr().err


def test_each_deciding_row_states_the_drop_it_detects_at_holms_first_level():
    """Ten seeds of two tuners: the family is baseline, a, b and all cells (4 rows), so a lone drop is judged at
    5% / 4; the detectable drop printed is the one at that level, larger than at an uncorrected 5%."""
    rng = np.random.default_rng(3)
    units = [
        evidence.Unit(cell, s, False, "test", 0.80, round(0.80 + rng.normal(0, 0.01), 4), f"{cell}|{s}", 0.0001)
        for cell in ("baseline", "a x1", "a x2", "b x1")
        for s in range(1, 11)
    ]
    found = {t.name: t for t in decision.decide(units)}
    assert {name for name, t in found.items() if t.level is not None} == {
        "baseline",
        "a, all budgets",
        "b x1",
        "all cells",
    }
    assert found["a x1"].level is None and found["a x1"].detectable is None  # shown; judged in a's row
    row = found["a, all budgets"]
    assert row.first_level == pytest.approx(0.05 / 4) and row.difference.n == 10
    assert row.detectable == pytest.approx(row.difference.detectable_at(0.05 / 4))
    assert row.detectable > row.difference.detectable
