"""scripts/replay_fidelity.py on doctored copies of the golden rows (no training): Δ vs baseline side by side, their
difference and agreement per tuner, the two rankings' Kendall tau, the surrogate on the real trials, and exit 2 with
one line on folders it cannot compare."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import scripts_module
import synthetic_tables

from fmbench.replay import configs

GOLDEN = Path(__file__).resolve().parent / "golden"
replay_fidelity = scripts_module.load("replay_fidelity")


@pytest.fixture(scope="module")
def table_dir(tmp_path_factory) -> Path:
    return synthetic_tables.save(tmp_path_factory.mktemp("table"), synthetic_tables.make(n_configs=80))


def _copy(tmp_path: Path, name: str, shift: dict[str, float], table: Path | None = None) -> Path:
    """The golden rows with each named tuner's test accuracy moved by its shift (in accuracy); with `table`, rows
    replayed from it. The trials' configurations become points of the MLP space whose validation accuracy is the
    synthetic table's truth, so the surrogate of that table predicts them."""
    folder = tmp_path / name
    shutil.copytree(GOLDEN, folder)
    runs = pd.read_csv(folder / "runs.csv", dtype=str, keep_default_na=False)
    for tuner, delta in shift.items():
        rows = (runs.tuner == tuner) & (runs.test_accuracy != "")  # a failed run has no accuracy to move
        runs.loc[rows, "test_accuracy"] = (runs.loc[rows, "test_accuracy"].astype(float) + delta).round(6).astype(str)
    if table is not None:
        runs["trainer"], runs["replay_table"] = "replay", str(table)
    runs.to_csv(folder / "runs.csv", index=False)
    trials = pd.read_csv(folder / "trials.csv", dtype=str, keep_default_na=False)
    points = configs.draw(len(trials) + 100)[100:]  # not the table's 80
    trials["hyperparameters"] = [json.dumps(values) for values in points]
    truth = [synthetic_tables.learnable(v) * (1 - 0.5 ** int(e)) for v, e in zip(points, trials.epochs)]
    trials["val_accuracy"] = [f"{t:.4f}" if s == "COMPLETED" else "" for t, s in zip(truth, trials.status)]
    trials.to_csv(folder / "trials.csv", index=False)
    return folder


def _row(text: str, tuner: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {tuner} "))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_a_replay_that_ranks_as_real_training_agrees_and_one_that_reverses_it_does_not(tmp_path, capsys, table_dir):
    real = _copy(tmp_path, "real", {"random": 0.05, "hyperband": 0.10})  # hyperband > random > baseline
    same = _copy(tmp_path, "same", {"random": 0.04, "hyperband": 0.09}, table_dir)
    reversed_ = _copy(tmp_path, "reversed", {"random": -0.05, "hyperband": -0.10}, table_dir)
    assert replay_fidelity.main([str(real), str(same)]) == 0
    out = capsys.readouterr().out
    hyperband = _row(out, "hyperband")
    assert hyperband[5].startswith("-1.00 [") and hyperband[6] == "yes" and float(hyperband[7]) > 0
    assert "Kendall's tau between the two rankings of 3 tuners: +1.00" in out
    assert f"Made by `python scripts/replay_fidelity.py {real} {same}`." in out  # the file names its command
    written = tmp_path / "fidelity.md"
    assert replay_fidelity.main([str(real), str(same), "--out", str(written)]) == 0
    assert written.read_text() == out.replace(f"{same}`", f"{same} --out {written}`")
    assert replay_fidelity.main([str(real), str(reversed_)]) == 0
    out = capsys.readouterr().out
    assert _row(out, "hyperband")[6] == _row(out, "random")[6] == "NO"
    assert _row(out, "baseline")[1] == _row(out, "baseline")[2] != "–"  # the baseline's rows are untouched
    assert "Kendall's tau between the two rankings of 3 tuners: -1.00" in out


def test_the_surrogate_is_judged_on_the_real_trials_trained_from_fresh_weights(tmp_path, capsys, table_dir):
    real = _copy(tmp_path, "real", {})
    assert replay_fidelity.main([str(real), str(_copy(tmp_path, "replay", {}, table_dir))]) == 0
    out = capsys.readouterr().out.split("## The surrogate on the real runs' own trials")[1]
    all_trials = _row(out, "all")
    assert all_trials[1] == "15" and float(all_trials[2]) > 0.8  # 15 completed, fresh; the failed one left out
    assert abs(float(all_trials[5])) < 1.0  # points: the truth the table was made from
    assert _row(out, "random")[1] == "8" and _row(out, "hyperband")[1] == "7"


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
    assert replay_fidelity.main([str(GOLDEN), str(_copy(tmp_path, "untabled", {}))]) == 2  # no table named
    assert "name 0 tables" in capsys.readouterr().err


def _label_proposals(folder: Path, model_lift: float = 0.0) -> None:
    """Random search's trials relabelled as a model-based tuner's: each seed's first trial its random start, the
    others its model's, lifted by `model_lift` (in accuracy)."""
    trials = pd.read_csv(folder / "trials.csv", dtype=str, keep_default_na=False)
    ours = trials.tuner == "random"
    first = ~trials[ours].duplicated("seed")
    trials.loc[ours, "proposed_by"] = ["random" if f else "model" for f in first]
    lifted = ours & (trials.proposed_by == "model") & (trials.val_accuracy != "")
    trials.loc[lifted, "val_accuracy"] = (trials.loc[lifted, "val_accuracy"].astype(float) + model_lift).astype(str)
    trials.to_csv(folder / "trials.csv", index=False)


def test_a_replay_that_flatters_a_models_proposals_shows_it_against_the_random_start(tmp_path, capsys, table_dir):
    real, replay = _copy(tmp_path, "real", {}), _copy(tmp_path, "replay", {}, table_dir)
    _label_proposals(real)
    _label_proposals(replay, model_lift=0.05)
    assert replay_fidelity.main([str(real), str(replay)]) == 0
    out = capsys.readouterr().out.split("| model − random start, real (pts)")[1].split("## The surrogate")[0]
    random = _row(out, "random")
    assert random[3].startswith("+5.00")  # replay − real: the lift, in points
    assert not any(line.startswith("| hyperband ") for line in out.splitlines())  # no model of its own: no row
    _label_proposals(replay, model_lift=-0.05)
    assert replay_fidelity.main([str(real), str(replay)]) == 0
    out = capsys.readouterr().out.split("| model − random start, real (pts)")[1]
    assert _row(out, "random")[3].startswith("+0.00 [") and _row(out, "random")[4] == "yes"
