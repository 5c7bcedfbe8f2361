"""Writes the hand-made golden results (runs.csv, trials.csv) in the real schema.

Run `python tests/golden/make_golden.py` after a schema change; the numbers below are chosen by hand
and the tests in tests/test_report.py check the report against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fmbench.schema import RUN_COLUMNS, TRIAL_COLUMNS

HERE = Path(__file__).parent
CPU = {
    "hostname": "golden-host",
    "platform": "Linux-6.8-x86_64",
    "cpu_model": "Golden CPU @ 2.00GHz",
    "cpu_cores": 8,
    "gpu_model": "no GPU",
    "python_version": "3.12.3",
    "tensorflow_version": "2.21.0",
    "jax_version": "not installed",
    "keras_version": "3.11.3",
    "keras_tuner_version": "1.4.8",
    "optuna_version": "5.0.0",
    "sklearn_version": "1.9.1",
    "commit": "abc123def456",
    "keras_backend": "tensorflow",
}
GPU = {**CPU, "hostname": "golden-gpu", "gpu_model": "NVIDIA H100 80GB HBM3", "commit": "fedcba987654"}

# tuner, seed, test_acc, best_val, hps, stopped_by, error, trials [(id, status, val, epochs, started, seconds, error)]
RUNS = [
    ("baseline", 1, 0.8512, 0.8560, {"units": 128, "dropout": 0.2}, "exhausted", "", []),
    ("baseline", 2, 0.8475, 0.8490, {"units": 128, "dropout": 0.2}, "exhausted", "", []),
    ("baseline", 3, 0.8540, 0.8530, {"units": 128, "dropout": 0.2}, "exhausted", "", []),
    (
        "random",
        1,
        0.8601,
        0.8610,
        {"units": 256, "dropout": 0.1, "learning_rate": 0.001},
        "trials",
        "",
        [
            ("00", "COMPLETED", 0.8300, 2, 0.0, 10.0, ""),
            ("01", "COMPLETED", 0.8610, 2, 10.5, 11.0, ""),
            ("02", "COMPLETED", 0.8400, 2, 22.0, 9.0, ""),
        ],
    ),
    (
        "random",
        2,
        0.8433,
        0.8520,
        {"units": 64, "dropout": 0.3, "learning_rate": 0.01},
        "trials",
        "",
        [
            ("00", "COMPLETED", 0.8450, 2, 0.0, 10.0, ""),
            ("01", "FAILED", None, 0, 10.2, 0.5, "ValueError: units must be positive"),
            ("02", "COMPLETED", 0.8520, 2, 11.0, 10.0, ""),
        ],
    ),
    (
        "random",
        3,
        0.8650,
        0.8700,
        {"units": 512, "dropout": 0.0, "learning_rate": 0.0005},
        "trials",
        "",
        [
            ("02", "COMPLETED", 0.8500, 2, 25.0, 12.0, ""),  # out of start order on purpose
            ("00", "COMPLETED", 0.8700, 2, 0.0, 12.0, ""),
            ("01", "COMPLETED", 0.8600, 2, 12.5, 12.0, ""),
        ],
    ),
    (
        "hyperband",
        1,
        0.8555,
        0.8540,
        {"units": 256, "dropout": 0.2, "tuner/epochs": 2, "tuner/round": 1},
        "trials",
        "",
        [
            ("00", "COMPLETED", 0.8200, 1, 0.0, 5.0, ""),
            ("01", "COMPLETED", 0.8400, 1, 5.1, 5.0, ""),
            ("02", "COMPLETED", 0.8540, 2, 10.3, 10.0, ""),
        ],
    ),
    (
        "hyperband",
        2,
        0.8580,
        0.8600,
        {"units": 128, "dropout": 0.1, "tuner/epochs": 1, "tuner/round": 0},
        "trials",
        "",
        [
            ("00", "COMPLETED", 0.8600, 1, 0.0, 5.0, ""),
            ("01", "COMPLETED", 0.8300, 1, 5.2, 5.0, ""),
            ("02", "COMPLETED", 0.8550, 2, 10.4, 10.0, ""),
        ],
    ),
    (
        "hyperband",
        3,
        None,
        None,
        {},
        "error",
        "ResourceExhaustedError: OOM when allocating tensor with shape [128,512]",
        [("00", "COMPLETED", 0.8100, 1, 0.0, 5.0, "")],
    ),
]


def main() -> None:
    runs, trials = [], []
    for n, (tuner, seed, test, val, hps, stopped, error, trial_list) in enumerate(RUNS):
        base = tuner == "baseline"
        budget = "none" if base else "trials3"
        cell = f"baseline-seed{seed}" if base else f"{tuner}-{budget}-seed{seed}"
        run_id = f"{cell}-20250101T00{n:02d}00"
        machine = GPU if tuner == "hyperband" else CPU
        search = 0.0 if base else round(sum(t[5] for t in trial_list) + 0.5, 3)
        failed = error != ""
        runs.append(
            {
                "run_id": run_id,
                "started_at": f"2025-01-01T00:{n:02d}:00+00:00",
                "profile": "golden",
                "cell": cell,
                "tuner": tuner,
                "budget": budget,
                "max_trials": None if base else 3,
                "max_seconds": None,
                "seed": seed,
                "train_size": 1000,
                "val_size": 200,
                "test_size": 500,
                "epochs": 2,
                "batch_size": 128,
                "hyperband_factor": 3 if tuner == "hyperband" else None,
                "num_initial_points": None,
                "best_hyperparameters": json.dumps(hps, sort_keys=True),
                "best_val_accuracy": val,
                "test_accuracy": test,
                "test_loss": None if failed else round(1.5 - test, 4),
                "search_seconds": search,
                "retrain_seconds": None if failed else 20.0 + seed,
                "evaluate_seconds": None if failed else 1.0 + seed / 10,
                "wall_seconds": search if failed else round(search + 20.0 + seed + 1.0 + seed / 10, 3),
                "trials_completed": sum(t[1] == "COMPLETED" for t in trial_list),
                "trials_failed": sum(t[1] == "FAILED" for t in trial_list),
                "search_epochs": sum(t[3] for t in trial_list),
                "retrain_epochs": None if failed else 2,
                "stopped_by": stopped,
                "time_overrun_seconds": None,
                "error": error,
                "samples": 10,
                "cpu_util_mean": 100.0 + 10 * seed,
                "system_cpu_util_mean": 20.0,
                "rss_peak_mb": 900.0,
                "gpu_util_mean": 40.0 + 10 * seed if tuner == "hyperband" and not failed else None,
                "gpu_util_p95": 80.0 if tuner == "hyperband" and not failed else None,
                "gpu_util_max": 90.0 + seed if tuner == "hyperband" and not failed else None,
                "gpu_mem_peak_mb": 2000.0 + 100 * seed if tuner == "hyperband" and not failed else None,
                **machine,
                "space": "mlp",
            }
        )
        for trial_id, status, acc, epochs, started, seconds, trial_error in trial_list:
            trials.append(
                {
                    "run_id": run_id,
                    "profile": "golden",
                    "cell": cell,
                    "tuner": tuner,
                    "budget": budget,
                    "seed": seed,
                    "trial_id": trial_id,
                    "hyperparameters": json.dumps({"units": 64 * (1 + int(trial_id))}, sort_keys=True),
                    "status": status,
                    "val_accuracy": acc,
                    "epochs": epochs,
                    "started_seconds": started,
                    "seconds": seconds,
                    "error": trial_error,
                    "samples": 2,
                    "cpu_util_mean": 100.0,
                    "system_cpu_util_mean": 20.0,
                    "rss_peak_mb": 800.0,
                    "gpu_util_mean": None,
                    "gpu_util_p95": None,
                    "gpu_util_max": None,
                    "gpu_mem_peak_mb": None,
                }
            )
    pd.DataFrame(runs, columns=RUN_COLUMNS).to_csv(HERE / "runs.csv", index=False)
    pd.DataFrame(trials, columns=TRIAL_COLUMNS).to_csv(HERE / "trials.csv", index=False)


if __name__ == "__main__":
    main()
