"""keras-tuner's GridSearch as a tuner row: the order it walks the grid in, and the budget cutting it.

No training: the oracle is asked for trials directly and told a score for each.
"""

from __future__ import annotations

import math
from pathlib import Path

from fmbench.budget import SearchClock
from fmbench.models import mlp
from fmbench.search import keras_tuner
from fmbench.spec import Budget, RunSpec


def _walk(tmp_path: Path, seed: int, max_trials: int, asks: int) -> list[dict | None]:
    """The values the grid oracle proposes for `asks` trials in a row (None once it stops)."""
    spec = RunSpec(tuner="grid", seed=seed, budget=Budget(max_trials=max_trials))
    _, oracle = keras_tuner.ORACLES["grid"](spec)
    oracle.clock, oracle.verbose = SearchClock(spec.budget), 0
    oracle._set_project_dir(str(tmp_path / f"seed{seed}"), "search")
    hp = oracle.get_space()
    mlp.build_model(hp)
    oracle.update_space(hp)
    walked = []
    for i in range(asks):
        trial = oracle.create_trial(f"t{i}")
        if trial.status == "STOPPED":
            walked.append(None)
            continue
        walked.append(mlp.active_values(trial.hyperparameters.values))
        hp = trial.hyperparameters.copy()
        mlp.build_model(hp)  # as a tuner does: declares the knobs this trial made active
        oracle.update_space(hp)
        oracle.update_trial(trial.trial_id, {"val_accuracy": 0.5})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return walked


def test_grid_starts_at_the_defaults_and_turns_the_learning_rate_fastest(tmp_path: Path) -> None:
    walked = _walk(tmp_path, seed=1, max_trials=12, asks=12)
    assert walked[0] == {"num_layers": 1, "units_0": 32, "dropout_0": 0.0, "learning_rate": 1e-4}
    sweep = walked[:11]
    assert all(
        {k: v for k, v in w.items() if k != "learning_rate"} == {"num_layers": 1, "units_0": 32, "dropout_0": 0.0}
        for w in sweep
    )
    # The default, then the centres of ten equal log-scale bins of [1e-4, 1e-2]: 11 distinct rates.
    rates = sorted(math.log10(w["learning_rate"]) for w in sweep)
    assert rates[0] == -4.0 and len(set(rates)) == 11
    assert [round(r, 6) for r in rates[1:]] == [round(-4 + 0.2 * i + 0.1, 6) for i in range(10)]
    assert walked[11]["dropout_0"] == 0.1 and walked[11]["learning_rate"] == 1e-4, "then the next knob up turns"


def test_grid_ignores_the_seed_and_stops_at_the_trial_budget(tmp_path: Path) -> None:
    one, two = _walk(tmp_path, seed=1, max_trials=4, asks=6), _walk(tmp_path, seed=2, max_trials=4, asks=6)
    assert one == two, "a grid is walked in a fixed order, whatever the seed"
    assert all(w is not None for w in one[:4]) and one[4:] == [None, None]
