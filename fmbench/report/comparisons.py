"""The report's paired comparisons: each tuner against the baseline, and every tuner against every other.

Each table is built from named records, one per row. Holm's correction is applied to a family of records at once,
and a row's detectable difference is stated at the level Holm's step holds that row's p to: the level its decision
is judged at, not an uncorrected 5% (docs: "Power is part of the answer").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from fmbench import stats
from fmbench.registry import BASELINE
from fmbench.report.tables import num, table
from fmbench.resultset import cell_order, cell_rows

ALPHA = 1 - stats.CONFIDENCE


@dataclass(frozen=True)
class Tested:
    """A paired difference as its family judges it: Holm's adjusted p, the level Holm's step holds its p to, and
    the smallest true difference found with stats.POWER at that level. All three are None when the difference
    has no p (one pair, or zero spread), and then it is no member of the family."""

    diff: stats.Difference
    adjusted: float | None = None
    level: float | None = None
    detectable: float | None = None

    @property
    def significant(self) -> bool:
        return self.adjusted is not None and self.adjusted <= ALPHA


def holm_family(diffs: list[stats.Difference]) -> list[Tested]:
    """Holm's step-down over the differences that have a p, in the given order.

    The k-th smallest of m p-values is held to ALPHA / (m - k + 1). Tied p-values take their steps in the given
    order, as both stats.holm and stats.holm_adjusted break ties (stable sorts), so the two agree row by row.
    """
    members = [i for i, d in enumerate(diffs) if d.p_value is not None]
    judged = [Tested(d) for d in diffs]
    if not members:
        return judged
    p = [diffs[i].p_value for i in members]
    levels = stats.holm(np.array([p]), ALPHA)[0][0]
    for i, adjusted, level in zip(members, stats.holm_adjusted(p), levels):
        level = float(level)
        judged[i] = Tested(diffs[i], adjusted, level, diffs[i].detectable_at(level))
    return judged


def tested_cells(tested: Tested | None) -> list[str]:
    """Δ (n), its interval, p, Holm's p, Holm's level and the detectable Δ at that level, as table cells."""
    if tested is None:
        return ["–"] * 6
    d = tested.diff
    unknown = f"unknown: {d.unknown}"
    return [
        f"{num(d.mean, sign=True)} (n={d.n})",
        unknown if d.low is None else f"[{num(d.low, sign=True)}, {num(d.high, sign=True)}]",
        unknown if d.p_value is None else f"{d.p_value:.3g}",
        unknown if tested.adjusted is None else f"{tested.adjusted:.3g}",
        unknown if tested.level is None else f"{tested.level:.3g}",
        unknown if tested.detectable is None else num(tested.detectable),
    ]


TESTED_HEADERS = ["Δ 95% CI", "p", "p (Holm)", "Holm α", "detectable Δ"]  # after the Δ column, named per table


def _level_text(family: str) -> str:
    return (
        f"*p (Holm)* is p corrected with Holm's step-down over {family}: a Δ is significant at {ALPHA:.0%} only where "
        f"p (Holm) <= {ALPHA:g}. *Holm α* is the level Holm's step holds that row's p to (the k-th smallest of m "
        f"p-values is held to {ALPHA:g} / (m − k + 1)), the level its decision uses; *detectable Δ* is the smallest "
        f"true difference the two-sided paired t-test would find with {stats.POWER:.0%} power at that level, given "
        "the observed spread of the differences (fmbench/stats.py, the same definitions the CI gate uses). It is "
        f"larger than at an uncorrected {ALPHA:g} wherever Holm α is below it, and a Δ that is not shown argues only "
        "against true differences at least that large, not against smaller ones."
    )


# ---------------------------------------------------------------- tuner against the baseline


@dataclass(frozen=True)
class AccuracyRow:
    """One cell of the accuracy table: its finished runs' test accuracy and, for a tuner, the Δ to the baseline."""

    tuner: str
    budget: str
    finished: int
    seeds: int
    accuracy: stats.Interval | None  # None when every run of the cell failed
    best_val: float
    versus: Tested | None = None  # None for the baseline, or without a seed both finished


def accuracy_rows(runs: pd.DataFrame) -> list[AccuracyRow]:
    """Every cell in report order; the Holm family is every comparison with the baseline, all budgets together."""
    base = runs[(runs["tuner"] == BASELINE) & ~runs["failed"]]
    base_acc = dict(zip(base["seed"].astype(int), base["test_accuracy"]))
    rows: list[AccuracyRow] = []
    diffs: dict[int, stats.Difference] = {}  # row index -> its difference with the baseline
    for tuner, budget in cell_order(zip(runs["tuner"], runs["budget"])):
        group = cell_rows(runs, tuner, budget)
        ok = group[~group["failed"]]
        accuracy = stats.mean_interval(ok["test_accuracy"]) if len(ok) else None
        pairs = dict(zip(ok["seed"].astype(int), ok["test_accuracy"]))
        if tuner != BASELINE and set(pairs) & set(base_acc):
            diffs[len(rows)] = stats.paired_difference(pairs, base_acc)
        rows.append(
            AccuracyRow(tuner, budget, len(ok), group["seed"].nunique(), accuracy, ok["best_val_accuracy"].mean())
        )
    judged = dict(zip(diffs, holm_family(list(diffs.values()))))
    return [dataclasses.replace(r, versus=judged.get(i)) for i, r in enumerate(rows)]


def _accuracy_cells(row: AccuracyRow) -> list[str]:
    head = [row.tuner, row.budget, f"{row.finished} / {row.seeds}"]
    if row.accuracy is None:
        return head + ["–"] * 9
    a = row.accuracy
    interval = "– (n < 2)" if a.low is None else f"[{num(a.low)}, {num(a.high)}]"
    return head + [f"{num(a.mean)} ± {num(a.std)}", interval, *tested_cells(row.versus), num(row.best_val)]


def accuracy_section(runs: pd.DataFrame) -> list[str]:
    rows = accuracy_rows(runs)
    family = sum(r.versus is not None and r.versus.adjusted is not None for r in rows)
    headers = ["tuner", "budget", "seeds ok / total", "test acc mean ± std", "95% CI", "Δ vs baseline"]
    return [
        "## Test accuracy against the baseline",
        "",
        table([_accuracy_cells(r) for r in rows], headers + TESTED_HEADERS + ["best val acc mean"]),
        "",
        "Means, standard deviations (ddof=1) and Student-t 95% intervals are over the seeds whose run finished; "
        "failed runs count in *total* but their missing accuracy is left out. Δ is tuner − baseline paired by seed "
        "(only seeds where both finished, n pairs); p is a two-sided paired t-test on those differences. "
        + _level_text(f"the family of all {family} comparisons with the baseline in this table")
        + " With 3–5 seeds this test only detects large effects. *unknown: zero spread* means every paired "
        "difference was identical: there is no spread to scale an interval, a p-value or a detectable difference "
        "by.",
        "",
    ]


# ---------------------------------------------------------------- tuner against tuner


@dataclass(frozen=True)
class PairRow:
    """Two tuners of one budget compared on the seeds both finished, the one with the higher mean first (Δ >= 0),
    so the table reads "which tuner pays most". tested is None when no seed has both finished."""

    budget: str
    higher: str
    lower: str
    tested: Tested | None


def pair_rows(runs: pd.DataFrame, budget: str) -> list[PairRow]:
    """Every pair of tuners (the baseline is not one) in one budget; the Holm family is this budget's pairs."""
    here = runs[(runs["budget"] == budget) & (runs["tuner"] != BASELINE)]
    ok = here[~here["failed"]]
    tuners = [tuner for tuner, _ in cell_order(zip(here["tuner"], here["budget"]))]
    accuracy = {t: dict(zip(g["seed"].astype(int), g["test_accuracy"])) for t, g in ok.groupby("tuner")}
    pairs: list[tuple[str, str, stats.Difference | None]] = []
    for a, b in combinations(tuners, 2):
        first, second = accuracy.get(a, {}), accuracy.get(b, {})
        if not set(first) & set(second):
            pairs.append((a, b, None))
            continue
        diff = stats.paired_difference(first, second)
        if diff.mean < 0:  # the test is symmetric: turning the pair round changes only signs
            a, b, diff = b, a, stats.paired_difference(second, first)
        pairs.append((a, b, diff))
    judged = iter(holm_family([d for _, _, d in pairs if d is not None]))
    rows = [PairRow(budget, a, b, None if d is None else next(judged)) for a, b, d in pairs]
    # In the order Holm's steps take them (smallest p first), so the Holm α column reads as the step-down does.
    return sorted(rows, key=_holm_order)


def _holm_order(row: PairRow) -> tuple[bool, float]:
    """Smallest p first (a stable sort keeps tied p in their family order, as Holm took them); no p last."""
    p = None if row.tested is None else row.tested.diff.p_value
    return (p is None, 0.0 if p is None else p)


def _points(value: float) -> str:
    return f"{100 * value:.2f}"


def _joint_bound(row: PairRow, pairs: int) -> float:
    """The upper bound of the pair's difference in a 95% interval held jointly over `pairs` pairs (Bonferroni: each
    at 1 - 0.05 / pairs): what "no tuner beats another by more than" may say of all of them at once."""
    d = row.tested.diff
    return d.mean + float(scipy_stats.t.ppf(1 - ALPHA / (2 * pairs), d.df)) * d.se


def verdict(budget: str, rows: list[PairRow]) -> str:
    """One sentence per budget, every figure from the rows: which pairs Holm shows, and how far the rest can differ,
    jointly over the pairs (and per pair)."""
    bounded = [r for r in rows if r.tested is not None and r.tested.diff.low is not None]
    missing = len(rows) - len(bounded)
    aside = f"; {missing} pair(s) have no interval to judge (see the table)" if missing else ""
    if not bounded:
        return f"At {budget} no pair of tuners has an interval (no two seeds both finished, or zero spread)."
    shown = [r for r in bounded if r.tested.significant]
    rest = [r for r in bounded if not r.tested.significant]
    per_pair = max((max(abs(r.tested.diff.low), abs(r.tested.diff.high)) for r in rest), default=None)
    joint = max((_joint_bound(r, len(bounded)) for r in rest), default=None)
    caveat = (
        "the bound of its 95% interval"
        if len(bounded) == 1
        else f"jointly over the {len(bounded)} pairs at 95% (Bonferroni); {_points(per_pair)} by the largest bound of "
        "their 95% intervals taken one pair at a time"
    )
    if not shown:
        return (
            f"At {budget} no pair differs significantly after Holm: no tuner beats another by more than "
            f"{_points(joint)} points of test accuracy ({caveat}){aside}."
        )
    beats = "; ".join(
        f"{r.higher} beats {r.lower} by {_points(r.tested.diff.mean)} points (95% CI {_points(r.tested.diff.low)} "
        f"to {_points(r.tested.diff.high)}, p (Holm) {r.tested.adjusted:.3g})"
        for r in shown
    )
    if not rest:
        return f"At {budget}, after Holm: {beats}{aside}."
    return (
        f"At {budget}, after Holm: {beats}. No other pair differs significantly, and none by more than "
        f"{_points(joint)} points ({caveat}){aside}."
    )


def pairs_section(runs: pd.DataFrame) -> list[str]:
    budgets = sorted(set(runs.loc[runs["tuner"] != BASELINE, "budget"]))
    by_budget = {budget: pair_rows(runs, budget) for budget in budgets}
    rows = [row for budget in budgets for row in by_budget[budget]]
    lines = ["## Tuner against tuner: which tuner pays most", ""]
    if not rows:
        return lines + ["Fewer than two tuners in every budget: no pair to compare.", ""]
    cells = [[r.budget, r.higher, r.lower, *tested_cells(r.tested)] for r in rows]
    headers = ["budget", "tuner (higher mean)", "vs tuner", "Δ"]
    return lines + [
        table(cells, headers + TESTED_HEADERS),
        "",
        "Within each budget, every pair of tuners (not the baseline): Δ is the first tuner's test accuracy minus the "
        "second's, paired by seed over the seeds both finished (n pairs), the tuner with the higher mean written "
        "first; the interval and p are the two-sided paired t-test's. "
        + _level_text("the pairs of the same budget")
        + " *–*: no seed where both finished (the pair then in registry order).",
        "",
        *[verdict(budget, by_budget[budget]) + "\n" for budget in budgets if by_budget[budget]],
    ]
