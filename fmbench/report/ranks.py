"""Ranks of tuners as HPO benchmark papers show them: mean rank against budget spent, and critical differences.

Read-only functions of stored rows (a ResultSet from resultset.load), and the report sections that show them;
they never train. Rank 1 is the best;
ties share the mean of their ranks. Tuners are compared only within one search space and one budget.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from fmbench.report.tables import num, table


@functools.cache
def nemenyi_q05(k: int) -> float:
    """Nemenyi's critical value for k tuners at 5%: the studentized range quantile q(0.95, k, inf) / sqrt(2),
    which Demsar (2006, table 5a) tabulates for k = 2..10 (1.960, 2.343, ..., 3.164)."""
    if k < 2:
        raise ValueError(f"Nemenyi's test compares at least 2 tuners, got {k}")
    return float(stats.studentized_range.ppf(0.95, k, np.inf) / math.sqrt(2))


def seed_ranks(runs: pd.DataFrame, value: str = "test_accuracy") -> pd.DataFrame:
    """One row per seed, one column per tuner: its rank among the tuners of that seed (higher value, lower rank).

    `runs` holds the rows of one space and one budget; seeds where any tuner has no value are dropped, so every
    rank compares the same set of tuners.
    """
    table = runs.pivot_table(index="seed", columns="tuner", values=value, aggfunc="mean").dropna()
    return table.rank(axis=1, ascending=False, method="average")


def anytime_mean_ranks(trials: pd.DataFrame, seconds: list[float]) -> pd.DataFrame:
    """Mean rank of each tuner's best validation accuracy so far, at each of `seconds` into the search.

    `trials` holds the trial rows of one space and one budget (each run one tuner x seed). A tuner with no
    completed trial by then ranks last at that time. Rows: seconds; columns: tuners.
    """
    done = trials[trials["status"] == "COMPLETED"].assign(ended=lambda t: t["started_seconds"] + t["seconds"])
    tuners = sorted(trials["tuner"].unique())
    rows = {}
    for at in seconds:
        best = done[done["ended"] <= at].groupby(["seed", "tuner"])["val_accuracy"].max().unstack("tuner")
        best = best.reindex(index=sorted(trials["seed"].unique()), columns=tuners).fillna(-math.inf)
        rows[at] = best.rank(axis=1, ascending=False, method="average").mean()
    return pd.DataFrame.from_dict(rows, orient="index")


@dataclass(frozen=True)
class CriticalDifference:
    """Friedman test over seeds and the Nemenyi critical difference of mean ranks (alpha 0.05)."""

    mean_ranks: dict[str, float]  # tuner -> mean rank over seeds
    seeds: int
    critical_difference: float  # two tuners whose mean ranks differ by more are significantly different
    friedman_p: float | None  # None with fewer than 3 tuners or 2 seeds (the test is undefined)

    def groups(self) -> list[tuple[str, ...]]:
        """Maximal runs of tuners (in rank order) whose mean ranks lie within one critical difference:
        the bars of a critical-difference diagram."""
        ordered = sorted(self.mean_ranks, key=self.mean_ranks.get)
        found: list[tuple[str, ...]] = []
        for i, first in enumerate(ordered):
            group = tuple(
                t for t in ordered[i:] if self.mean_ranks[t] - self.mean_ranks[first] <= self.critical_difference
            )
            if len(group) > 1 and not any(set(group) <= set(g) for g in found):
                found.append(group)
        return found


def critical_difference(ranks: pd.DataFrame) -> CriticalDifference:
    """From seed_ranks' table: mean ranks, the Friedman p-value and the Nemenyi critical difference."""
    k, n = ranks.shape[1], ranks.shape[0]
    cd = nemenyi_q05(k) * math.sqrt(k * (k + 1) / (6.0 * n)) if n else math.inf
    p = None
    if k >= 3 and n >= 2:
        p = float(stats.friedmanchisquare(*(ranks[c].to_numpy() for c in ranks.columns)).pvalue)
        p = None if np.isnan(p) else p  # every seed ranks identically: no variance to test
    return CriticalDifference({str(c): float(ranks[c].mean()) for c in ranks.columns}, n, cd, p)


def per_budget(ok: pd.DataFrame, base: pd.DataFrame) -> dict[str, CriticalDifference]:
    """Each budget's critical difference over its tuners and the baseline, where the test is defined (at least 3
    of them over at least 2 seeds): what the report's table lists and its diagram draws."""
    found = {}
    for budget in sorted(set(ok["budget"]) - {"none"}):
        ranks = seed_ranks(pd.concat([ok[ok["budget"] == budget], base]))
        if ranks.shape[1] >= 3 and ranks.shape[0] >= 2:
            found[budget] = critical_difference(ranks)
    return found


def critical_differences(ok: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    """Friedman's test over seeds and Nemenyi's critical difference per budget: which mean ranks differ."""
    rows = []
    for budget, cd in per_budget(ok, base).items():
        groups = "; ".join(", ".join(group) for group in cd.groups()) or "none"
        rows.append(
            [
                budget,
                str(cd.seeds),
                num(cd.friedman_p, 3) if cd.friedman_p is not None else "unknown: identical ranks",
                num(cd.critical_difference, 2),
                groups,
            ]
        )
    if not rows:
        return []
    return [
        "## Critical differences",
        "",
        "Friedman's test over seeds and Nemenyi's critical difference at 5%: two mean ranks further apart "
        "than the critical "
        "difference differ significantly; each group lists runs whose mean ranks lie within it of each other.",
        "",
        table(rows, ["budget", "seeds", "Friedman p", "critical difference", "not significantly different"]),
        "",
    ]


def anytime_ranks(runs: pd.DataFrame, trials: pd.DataFrame) -> list[str]:
    """Mean rank of the best validation accuracy so far at quarters of each budget's longest search."""
    rows = []
    for budget in sorted(set(runs["budget"]) - {"none"}):
        done = trials[trials["budget"] == budget]
        longest = float(runs.loc[runs["budget"] == budget, "search_seconds"].max())
        if done["tuner"].nunique() < 2 or not longest > 0:
            continue
        at = [round(longest * q, 1) for q in (0.25, 0.5, 0.75, 1.0)]
        ranks = anytime_mean_ranks(done, at)
        rows += [[budget, tuner, *(num(ranks.loc[t, tuner], 2) for t in at)] for tuner in ranks.columns]
    if not rows:
        return []
    return [
        "## Mean rank against search time",
        "",
        "Within each budget and seed, tuners are ranked by their best validation accuracy so far (a tuner "
        "with no finished "
        "trial yet ranks last), at a quarter, half, three quarters and all of the budget's longest search; "
        "the mean over seeds.",
        "",
        table(rows, ["budget", "tuner", "1/4", "1/2", "3/4", "end"]),
        "",
    ]
