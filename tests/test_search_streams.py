"""What the oracles propose, asked directly (no training): independent streams per seed, the whole declared space
on every trial, no trial once the budget is spent, and who proposed each trial."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from fmbench.budget import SearchClock
from fmbench.models import mlp
from fmbench.models.trainer import KerasTrainer
from fmbench.search import keras_tuner
from fmbench.spec import Budget, RunSpec


def _tuner_oracle(tmp_path: Path, spec: RunSpec, clock: SearchClock | None = None):
    """A keras-tuner oracle of the spec, set up by its tuner as a search sets it up (the space declared)."""
    tuner_class, oracle = keras_tuner.make(spec)
    oracle.clock = clock or SearchClock(spec.budget)
    tuner_class(
        oracle=oracle,
        hypermodel=mlp.build_model,
        trainer=KerasTrainer(spec),
        directory=str(tmp_path / spec.cell),
        project_name="s",
    )
    return oracle


def _propose(oracle, trials: int, score=lambda values: 0.5) -> list[dict]:
    """The active values of `trials` proposals in a row, each told a score (None once the oracle stops)."""
    proposed = []
    for _ in range(trials):
        trial = oracle.create_trial("tuner0")
        if trial.status == "STOPPED":
            proposed.append(None)
            continue
        values = mlp.active_values(trial.hyperparameters.values)
        proposed.append(values)
        oracle.update_trial(trial.trial_id, {"val_accuracy": score(values)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    return proposed


def _spec(tuner: str, seed: int, **budget) -> RunSpec:
    return RunSpec(tuner=tuner, seed=seed, budget=Budget(**(budget or {"max_trials": 20})), epochs=3, profile="test")


def test_search_seeds_differ_by_seed_tuner_and_budget_and_never_are_zero():
    specs = [
        _spec(tuner, seed, **budget)
        for tuner in ("random", "hyperband", "bayesian", "tpe")
        for seed in range(1, 21)
        for budget in ({"max_trials": 4}, {"max_epochs": 12}, {"max_seconds": 20})
    ]
    seeds = [spec.search_seed for spec in specs]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 1
    assert seeds == [spec.search_seed for spec in specs], "a pure function of the spec"
    # keras-tuner's streams of seeds s and s + k share values from the k-th sample on: none is within 10,000.
    gaps = [abs(a - b) for a, b in itertools.combinations(seeds, 2)]
    assert min(gaps) > 10_000


@pytest.mark.parametrize("tuner", ["random", "hyperband", "bayesian"])
def test_two_run_seeds_share_no_configuration(tuner, tmp_path):
    # Seeds 1 and 5 once replayed one stream shifted by four samples. 14 proposals: the 10 random ones of a 20-trial
    # budget and 4 of Bayesian optimisation's Gaussian process (each costs a fit: more would only slow the test).
    proposals = {seed: _propose(_tuner_oracle(tmp_path, _spec(tuner, seed)), 14) for seed in (1, 2, 5)}
    seen = {seed: {json.dumps(v, sort_keys=True) for v in values if v} for seed, values in proposals.items()}
    for a, b in itertools.combinations(seen, 2):
        assert not seen[a] & seen[b], f"{tuner}: seeds {a} and {b} proposed the same configuration"


def test_every_trial_samples_the_deeper_layers_too(tmp_path):
    proposals = _propose(_tuner_oracle(tmp_path, _spec("random", 3, max_trials=60)), 60)
    deep = [v for v in proposals if v["num_layers"] >= 2]
    assert len(deep) >= 30
    # A deeper layer at exactly (32 units, no dropout) has chance 1/16 x 1/6; all of a trial's at once far less.
    at_default = [
        v for v in deep if all(v[f"units_{i}"] == 32 and v[f"dropout_{i}"] == 0.0 for i in range(1, v["num_layers"]))
    ]
    assert len(at_default) <= 1, f"deeper layers left at their defaults: {at_default}"
    assert len({v["units_1"] for v in deep}) >= 8 and len({v["dropout_1"] for v in deep}) >= 4


class _StepClock:
    """A clock that moves only when told to."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_no_trial_starts_when_the_proposal_spent_the_budget(tmp_path, monkeypatch):
    spec = _spec("bayesian", 1, max_seconds=10)
    time = _StepClock()
    oracle = _tuner_oracle(tmp_path, spec, SearchClock(spec.budget, clock=time))
    assert _propose(oracle, 1)[0] is not None, "before the deadline a trial starts"
    proposing = type(oracle).__mro__[2].populate_space  # the Gaussian process's own proposal

    def slow_proposal(self, trial_id):
        time.now = 12.0  # the fit took the rest of the budget and more
        return proposing(self, trial_id)

    monkeypatch.setattr(type(oracle).__mro__[2], "populate_space", slow_proposal)
    assert _propose(oracle, 1) == [None]
    assert oracle.clock.stop_reason == "time"


def test_bayesian_records_which_trials_its_model_proposed(tmp_path):
    spec = _spec("bayesian", 1, max_trials=6)  # three random trials, then the Gaussian process
    oracle = _tuner_oracle(tmp_path, spec)
    _propose(oracle, 6, score=lambda values: values["learning_rate"])
    assert [oracle.proposed_by[trial_id] for trial_id in sorted(oracle.proposed_by)] == ["random"] * 3 + ["model"] * 3
    assert _tuner_oracle(tmp_path, _spec("random", 1)).proposed_by == {}
    random_oracle = _tuner_oracle(tmp_path, _spec("random", 2))
    _propose(random_oracle, 2)
    assert set(random_oracle.proposed_by.values()) == {""}, "no model, nobody to name"
