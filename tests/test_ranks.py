"""fmbench.report.ranks ranks per seed, anytime mean ranks, Friedman / Nemenyi critical differences."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from fmbench.report import ranks


def _runs(table: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"tuner": tuner, "seed": seed + 1, "test_accuracy": acc}
            for tuner, accs in table.items()
            for seed, acc in enumerate(accs)
        ]
    )


def test_seed_ranks_best_is_one_and_ties_share() -> None:
    seed_ranks = ranks.seed_ranks(_runs({"a": [0.9, 0.8], "b": [0.8, 0.8], "c": [0.7, 0.9]}))
    assert seed_ranks.loc[1].to_dict() == {"a": 1.0, "b": 2.0, "c": 3.0}
    assert seed_ranks.loc[2].to_dict() == {"a": 2.5, "b": 2.5, "c": 1.0}


def test_seed_ranks_drop_seeds_a_tuner_lacks() -> None:
    runs = _runs({"a": [0.9, 0.8], "b": [0.8, 0.7]})
    runs.loc[(runs["tuner"] == "b") & (runs["seed"] == 2), "test_accuracy"] = None  # a failed run
    assert list(ranks.seed_ranks(runs).index) == [1]


def test_anytime_ranks_follow_the_best_so_far() -> None:
    rows = [  # tuner a finds 0.8 at 10 s; b finds 0.7 at 5 s and 0.9 at 20 s; one seed
        ("a", 0, 10, 0.8),
        ("b", 0, 5, 0.7),
        ("b", 5, 15, 0.9),
    ]
    trials = pd.DataFrame(
        [
            {"tuner": t, "seed": 1, "status": "COMPLETED", "started_seconds": s, "seconds": d, "val_accuracy": v}
            for t, s, d, v in rows
        ]
    )
    table = ranks.anytime_mean_ranks(trials, [1, 6, 12, 25])
    assert table.loc[1].to_dict() == {"a": 1.5, "b": 1.5}, "nothing finished: a tie"
    assert table.loc[6].to_dict() == {"a": 2.0, "b": 1.0}
    assert table.loc[12].to_dict() == {"a": 1.0, "b": 2.0}
    assert table.loc[25].to_dict() == {"a": 2.0, "b": 1.0}


def test_critical_difference_matches_the_nemenyi_formula() -> None:
    # 3 tuners, 10 seeds, a always first, b and c trading places.
    seed_ranks = ranks.seed_ranks(_runs({"a": [0.9] * 10, "b": [0.8, 0.7] * 5, "c": [0.7, 0.8] * 5}))
    cd = ranks.critical_difference(seed_ranks)
    assert cd.mean_ranks == {"a": 1.0, "b": 2.5, "c": 2.5}
    assert cd.critical_difference == pytest.approx(2.343 * math.sqrt(3 * 4 / 60), abs=1e-3)  # 1.048
    assert cd.friedman_p is not None and cd.friedman_p < 0.01
    assert cd.groups() == [("b", "c")], "a is significantly better than both; b and c are not told apart"


def test_few_seeds_tell_nothing_apart() -> None:
    cd = ranks.critical_difference(ranks.seed_ranks(_runs({"a": [0.9, 0.9], "b": [0.8, 0.8], "c": [0.7, 0.7]})))
    assert cd.critical_difference > 2.0 and cd.groups() == [("a", "b", "c")]


def test_nemenyi_value_is_demsars_table_and_goes_past_it() -> None:
    demsar = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}
    for k, tabled in demsar.items():  # the table's third decimal is rounded either way (2.3437 is 2.343 there)
        assert ranks.nemenyi_q05(k) == pytest.approx(tabled, abs=1e-3), k
    assert ranks.nemenyi_q05(12) > ranks.nemenyi_q05(10), "more tuners, a wider critical difference"
    with pytest.raises(ValueError, match="at least 2"):
        ranks.nemenyi_q05(1)


def test_per_budget_needs_three_runs_over_two_seeds() -> None:
    runs = _runs({"a": [0.9, 0.8], "b": [0.8, 0.7], "c": [0.7, 0.9]}).assign(budget="trials3")
    two = runs[runs["tuner"] != "c"]
    assert list(ranks.per_budget(runs, runs.iloc[:0])) == ["trials3"]
    assert ranks.per_budget(two, two.iloc[:0]) == {}, "two tuners: Friedman's test is undefined"
