"""Scale-out: trials per minute of one random search with 1 and with 2 local worker processes (smoke sizes)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fmbench import profiles
from fmbench.spec import Budget, DataSizes, RunSpec

SUBSET_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "fashion-mnist-subset"
TRIALS = 6  # the same global budget for both: 6 trials in all, not per worker
WORKER_COUNTS = (1, 2)


def _data():
    """FMBENCH_DATA_DIR at the smoke profile's sizes, else the shipped subset (it holds 1500/300/400 images)."""

    smoke = profiles.get_profile("smoke").sizes
    directory = os.environ.get("FMBENCH_DATA_DIR")
    if directory:
        return directory, smoke
    directory = str(SUBSET_DIR)
    return directory, DataSizes(train=min(smoke.train, 1500), val=min(smoke.val, 300), test=min(smoke.test, 400))


def test_trials_per_minute(benchmark):
    from fmbench import data, protocol

    directory, sizes = _data()
    smoke = profiles.get_profile("smoke")
    spec = RunSpec(
        tuner="random",
        seed=1,
        budget=Budget(max_trials=TRIALS),
        sizes=sizes,
        epochs=smoke.epochs,
        batch_size=smoke.batch_size,
        profile="smoke",
    )
    split = data.load(directory, sizes)

    def measure() -> dict:
        figures = {}
        for workers in WORKER_COUNTS:
            started = time.monotonic()
            result = protocol.run_distributed(
                spec, split, progress=lambda line: None, workers=workers, data_dir=directory, stall_timeout=600
            )
            wall = time.monotonic() - started
            assert result.error == "", result.error
            assert result.trials_completed == TRIALS and result.workers == workers
            figures[workers] = {
                "trials": result.trials_completed,
                "search_seconds": round(result.search_seconds, 2),
                # search time starts once every local worker is ready (TF imported, data loaded)
                "trials_per_minute": round(60 * result.trials_completed / result.search_seconds, 2),
                # everything the chief waited for: worker start-up, search, retrain, evaluation
                "run_wall_seconds": round(wall, 2),
                "trials_per_minute_with_startup": round(
                    60 * result.trials_completed / (wall - result.retrain_seconds - result.evaluate_seconds), 2
                ),
                "mean_trial_seconds": round(sum(t.seconds for t in result.trials) / len(result.trials), 2),
            }
        return figures

    figures = benchmark.pedantic(measure, rounds=1, iterations=1)
    benchmark.extra_info.update(
        tuner=spec.tuner,
        max_trials=TRIALS,
        train=sizes.train,
        val=sizes.val,
        epochs=spec.epochs,
        data_dir=directory,
        cpu_cores=os.cpu_count(),
        **{f"workers{n}_{key}": value for n, row in figures.items() for key, value in row.items()},
        speedup=round(figures[2]["trials_per_minute"] / figures[1]["trials_per_minute"], 2),
    )
