"""brackets_completed counts Hyperband brackets, not the trials of their final rounds (fake trials, no training)."""

from __future__ import annotations

import keras_tuner as kt
import pytest

from fmbench.search.base import _brackets_completed
from fmbench.spec import CUT, Budget, RunSpec, TrialRecord


def _spec(tuner: str = "hyperband", epochs: int = 10, factor: int = 3) -> RunSpec:
    return RunSpec(tuner=tuner, seed=1, budget=Budget(max_epochs=100), epochs=epochs, hyperband_factor=factor)


def _trial(index: int, bracket: int | None, round_: int | None, status: str = "COMPLETED") -> TrialRecord:
    return TrialRecord(
        trial_id=f"{index:04d}",
        hyperparameters={},
        status=status,
        val_accuracy=0.5 if status == "COMPLETED" else None,
        epochs=1,
        started_seconds=float(index),
        seconds=1.0,
        bracket=bracket,
        round=round_,
    )


def _schedule(sizes: dict[int, list[int]]) -> list[TrialRecord]:
    """One pass through the given brackets: {bracket: [trials in round 0, round 1, ...]}, in that order."""
    records: list[TrialRecord] = []
    for bracket, rounds in sizes.items():
        for round_, size in enumerate(rounds):
            records += [_trial(len(records), bracket, round_) for _ in range(size)]
    return records


# The standard profile's Hyperband (max_epochs=10, factor 3): brackets 2, 1, 0 of 12+4+2, 6+2 and 4 trials.
STANDARD = {2: [12, 4, 2], 1: [6, 2], 0: [4]}


def test_a_final_round_of_two_trials_is_one_bracket() -> None:
    # The committed standard rows say 4 here: they counted the two final-round trials of each bracket.
    assert _brackets_completed(_spec(), _schedule(STANDARD)) == 2


def test_a_final_round_cut_short_completes_no_bracket() -> None:
    first = _schedule({2: [12, 4, 2]})
    assert _brackets_completed(_spec(), first) == 1
    assert _brackets_completed(_spec(), first[:-1]) == 0, "one of two final-round trials is no bracket"
    # A final-round trial the budget cut never reaches summarize_search's completed list; nor does it count here.
    cut = first[:-1] + [_trial(len(first), 2, 2, status=CUT)]
    assert _brackets_completed(_spec(), [r for r in cut if r.status == "COMPLETED"]) == 0


def test_bracket_zero_has_no_promotion_and_does_not_count() -> None:
    assert _brackets_completed(_spec(), _schedule({0: [4]})) == 0


def test_a_bracket_number_recurring_in_a_later_iteration_counts_per_pass() -> None:
    # hyperband_iterations=None: the oracle starts bracket 2 again after bracket 0.
    twice = _schedule(STANDARD) + _schedule({2: [12, 4, 2]})
    assert _brackets_completed(_spec(), twice) == 3
    assert _brackets_completed(_spec(), twice[:-1]) == 2


def test_the_final_round_size_follows_epochs_and_factor() -> None:
    # quick (max_epochs=4, factor 2): bracket 2 ends in 1 trial, bracket 1 in 2.
    quick = _schedule({2: [4, 2, 1], 1: [3, 2]})
    assert _brackets_completed(_spec(epochs=4, factor=2), quick) == 2
    # max_epochs=3, factor 3: bracket 1 ends in 1 trial.
    assert _brackets_completed(_spec(epochs=3, factor=3), _schedule({1: [3, 1]})) == 1


def test_other_tuners_record_none() -> None:
    assert _brackets_completed(_spec("random"), [_trial(0, None, None)]) is None


@pytest.mark.parametrize("max_epochs,factor", [(10, 3), (4, 2), (3, 3), (9, 3), (27, 3), (5, 2), (100, 4)])
def test_counts_the_brackets_keras_tuners_oracle_completed(tmp_path, max_epochs: int, factor: int) -> None:
    """Drive keras-tuner's own HyperbandOracle with fake scores through two iterations: after every trial, the
    count is the brackets (>= 1) the oracle has moved on from, whatever their final rounds held."""
    oracle = kt.oracles.HyperbandOracle(
        objective=kt.Objective("val_accuracy", "max"),
        max_epochs=max_epochs,
        factor=factor,
        hyperband_iterations=None,
        seed=1,
    )
    oracle._set_project_dir(str(tmp_path), "p")
    oracle.verbose = 0
    oracle.hyperparameters.Int("x", 1, 10**9)  # wide enough that random values never collide
    brackets = oracle._get_num_brackets()
    records: list[TrialRecord] = []
    starts: list[int] = []  # where each bracket begins: consecutive brackets differ in number (b, b-1, ..., 0, b)
    while len(starts) <= 2 * brackets:  # two whole iterations, and the first trial of the third
        trial = oracle.create_trial("t")
        values = trial.hyperparameters.values
        if not records or values["tuner/bracket"] != records[-1].bracket:
            starts.append(len(records))
        records.append(_trial(len(records), values["tuner/bracket"], values["tuner/round"]))
        oracle.update_trial(trial.trial_id, {"val_accuracy": (len(records) * 7919 % 1000) / 1000})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    # Sequential trials that all complete: the oracle starts a new bracket only once the current one is complete.
    spec = _spec(epochs=max_epochs, factor=factor)
    for k in range(1, len(records) + 1):
        ended = sum(records[s].bracket >= 1 for s, nxt in zip(starts, starts[1:]) if nxt <= k)
        assert _brackets_completed(spec, records[:k]) == ended, (k, [(r.bracket, r.round) for r in records[:k]])
