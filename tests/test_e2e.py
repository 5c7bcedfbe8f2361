"""End to end: keras-tuner's tuners and the baseline through `fmbench run` on the shipped real subset.

Optuna's tuners have their own end-to-end test in tests/test_optuna.py.

Smoke profile (3 epochs per trial, batch 128) with --max-trials 2; the subset caps the profile's sizes to
1500 train / 300 val / 400 test images. About half a minute on 2 CPU cores.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fmbench import cli, results
from fmbench.registry import DEFAULT_TUNERS as TUNER_NAMES

pytestmark = pytest.mark.e2e

RUNNERS = (*TUNER_NAMES, "baseline")


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory, subset_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("e2e")
    for runner in RUNNERS:
        budget = [] if runner == "baseline" else ["--max-trials", "2"]
        code = cli.main(
            [
                "run",
                "--tuner",
                runner,
                *budget,
                "--seed",
                "1",
                "--profile",
                "smoke",
                "--data-dir",
                str(subset_dir),
                "--out",
                str(out),
            ]
        )
        assert code == 0, f"{runner}: exit {code}"
    return out


@pytest.fixture(scope="module")
def runs(out_dir: Path) -> pd.DataFrame:
    return results.read_runs(out_dir)


@pytest.fixture(scope="module")
def trials(out_dir: Path) -> pd.DataFrame:
    return results.read_trials(out_dir)


def test_one_run_row_per_runner_with_a_real_test_accuracy(runs: pd.DataFrame, visible_gpus: list[str]) -> None:
    assert sorted(runs["tuner"]) == sorted(RUNNERS)
    assert runs["run_id"].is_unique
    for row in runs.itertuples():
        assert 0.1 < row.test_accuracy <= 1.0, f"{row.tuner}: test accuracy {row.test_accuracy} is chance or worse"
        assert 0.0 < row.test_loss
        assert 0.0 < row.best_val_accuracy <= 1.0
        assert pd.isna(row.error) or row.error == "", row.error
        assert row.retrain_epochs == 3 and row.epochs == 3 and row.profile == "smoke" and row.seed == 1
        assert row.wall_seconds == pytest.approx(
            row.search_seconds + row.retrain_seconds + row.evaluate_seconds, abs=0.01
        )
        assert row.gpu_model == (", ".join(visible_gpus) or "no GPU") and row.cpu_model
        gpu_fields = [row.gpu_util_mean, row.gpu_util_max, row.gpu_mem_peak_mb]
        if visible_gpus:
            assert not any(pd.isna(gpu_fields)), f"{row.tuner}: a GPU is visible but its figures are missing"
        else:
            assert all(pd.isna(gpu_fields)), f"{row.tuner}: no GPU visible, yet GPU figures {gpu_fields}"


def test_tuner_runs_stop_by_their_trial_budget(runs: pd.DataFrame) -> None:
    tuned = runs[runs["tuner"] != "baseline"].set_index("tuner")
    for tuner in TUNER_NAMES:
        row = tuned.loc[tuner]
        assert row["stopped_by"] == "trials", tuner
        assert (row["trials_completed"], row["trials_failed"]) == (2, 0), tuner
        assert row["budget"] == "trials2" and row["cell"] == f"{tuner}-trials2-seed1"
        assert row["search_seconds"] > 0 and row["search_epochs"] >= 2
    assert tuned.loc["bayesian", "num_initial_points"] == 1  # half of 2 trials
    assert tuned.loc["hyperband", "hyperband_factor"] == 3


def test_two_trials_per_tuner_run_each_with_epochs(runs: pd.DataFrame, trials: pd.DataFrame) -> None:
    tuned = runs[runs["tuner"] != "baseline"]
    assert set(trials["run_id"]) == set(tuned["run_id"]), "the baseline has no trials; every tuner run has some"
    for row in tuned.itertuples():
        mine = trials[trials["run_id"] == row.run_id]
        assert len(mine) == 2, row.tuner
        assert (mine["status"] == "COMPLETED").all() and (mine["epochs"] > 0).all(), row.tuner
        assert mine["epochs"].sum() == row.search_epochs, row.tuner
        assert mine["val_accuracy"].max() == pytest.approx(row.best_val_accuracy), row.tuner
        for hps in mine["hyperparameters"]:
            values = json.loads(hps)
            assert {"num_layers", "learning_rate"} <= set(values) and not any(k.startswith("tuner/") for k in values)


def test_baseline_row_is_the_baseline_model(runs: pd.DataFrame) -> None:
    row = runs[runs["tuner"] == "baseline"].iloc[0]
    assert json.loads(row["best_hyperparameters"]) == {
        "num_layers": 1,
        "units_0": 128,
        "dropout_0": 0.0,
        "learning_rate": 1e-3,
    }
    assert row["trials_completed"] == 0 and row["search_epochs"] == 0
