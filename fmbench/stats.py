"""Across-seed statistics, defined once: means with t intervals, differences with their test, margin and
detectable drop. Report and check both read these; the tests are scipy's (ttest_rel and its confidence_interval();
nct for power), not hand formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
POWER = 0.80
# Accuracies are float32 fractions of a test set; differences below this are rounding, not spread.
RESOLUTION = 1e-9


@dataclass(frozen=True)
class Interval:
    """Mean of n values with its two-sided t confidence interval (None bounds when n < 2)."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for n == 1
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Difference:
    """current - reference with its test. alternative is scipy's: 'two-sided' asks "any difference?",
    'less' asks "did current drop?". The interval, p, margin and detectable drop all belong to that test.

    margin: how far the mean difference may go (below 0 for 'less') before the test calls it significant at
    1 - CONFIDENCE. detectable: the smallest true difference the test finds with POWER, given the observed spread.
    When there is no spread to estimate (one pair, or every difference identical) these are None and `unknown`
    says why: the figure is unknowable, not small.
    """

    method: str  # "paired", the one test every comparison uses
    n: int  # pairs
    mean: float
    low: float | None
    high: float | None
    p_value: float | None
    margin: float | None
    df: float | None = None
    se: float | None = None
    alternative: str = "two-sided"
    unknown: str = ""  # why the test figures are None: "one pair", "zero spread"
    floored: bool = False  # the observed spread was below one step and was taken as one step

    @property
    def detectable(self) -> float | None:
        """Computed when asked: a root search over scipy's noncentral t, too slow for every simulated gate run."""
        return self.detectable_at(1 - CONFIDENCE)

    def detectable_at(self, alpha: float) -> float | None:
        """The detectable difference at the level the decision judges this test by (after a multiple-test
        correction such as Holm's, that is below 1 - CONFIDENCE, and the difference is larger)."""
        return None if self.se is None else detectable_difference(self.df, self.se, self.alternative, alpha)


def mean_interval(values, confidence: float = CONFIDENCE) -> Interval:
    """Student-t interval of the mean; with one value there is no spread to estimate."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = len(data)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = float(data.mean())
    if n < 2:
        return Interval(n, mean, 0.0, None, None)
    std = float(data.std(ddof=1))
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


def paired_difference(
    current: dict[int, float],
    reference: dict[int, float],
    alternative: str = "two-sided",
    confidence: float = CONFIDENCE,
    step: float = 0.0,
) -> Difference:
    """Differences on the keys (seeds) both sides have, by scipy's paired t-test; keys on one side only are left out.

    step: the finest difference the measure can show (one image of the evaluated set, as accuracy). When given,
    a spread of the differences below it is taken as one step (`floored`): accuracies count images, and a smaller
    spread is rounding luck, not evidence of no noise. Without it, zero spread leaves the figures unknown.
    """
    keys = sorted(set(current) & set(reference))
    if not keys:
        raise ValueError("no seed in common: the differences cannot be paired")
    cur = np.round([current[k] for k in keys], 9)
    ref = np.round([reference[k] for k in keys], 9)
    diffs = np.round(cur - ref, 9)
    mean = float(diffs.mean())
    n = len(keys)
    spread = float(diffs.std(ddof=1)) if n >= 2 else 0.0
    if n < 2 or (not step and spread < RESOLUTION):
        return Difference(
            "paired",
            n,
            mean,
            None,
            None,
            None,
            None,
            alternative=alternative,
            unknown="one pair" if n < 2 else "zero spread",
        )
    if spread < step:
        return _figures(
            "paired",
            n,
            mean,
            _FlooredTest(mean, step / math.sqrt(n), n - 1, alternative),
            step / math.sqrt(n),
            alternative,
            confidence,
            floored=True,
        )
    test = scipy_stats.ttest_rel(cur, ref, alternative=alternative)
    return _figures("paired", n, mean, test, spread / math.sqrt(n), alternative, confidence)


@dataclass(frozen=True)
class _FlooredTest:
    """A one-sample t-test of a mean difference whose standard error is given, in the shape of scipy's result."""

    mean: float
    se: float
    df: float
    alternative: str

    @property
    def pvalue(self) -> float:
        t = self.mean / self.se
        if self.alternative == "less":
            return float(scipy_stats.t.cdf(t, self.df))
        if self.alternative == "greater":
            return float(scipy_stats.t.sf(t, self.df))
        return float(2 * scipy_stats.t.sf(abs(t), self.df))

    def confidence_interval(self, confidence: float):
        if self.alternative == "two-sided":
            return scipy_stats.t.interval(confidence, self.df, loc=self.mean, scale=self.se)
        half = float(scipy_stats.t.ppf(confidence, self.df)) * self.se
        return (-math.inf, self.mean + half) if self.alternative == "less" else (self.mean - half, math.inf)


def _figures(
    method: str, n: int, mean: float, test, se: float, alternative: str, confidence: float, floored: bool = False
) -> Difference:
    low, high = test.confidence_interval(confidence)
    low = None if math.isinf(low) else float(low)
    high = None if math.isinf(high) else float(high)
    # The margin is the distance from the mean difference to the bound of the interval on the tested side.
    margin = float(mean - low) if alternative == "greater" else float(high - mean)
    return Difference(
        method, n, mean, low, high, float(test.pvalue), margin, float(test.df), se, alternative, floored=floored
    )


def detectable_difference(
    df: float, se: float, alternative: str = "two-sided", alpha: float = 1 - CONFIDENCE, power: float = POWER
) -> float | None:
    """Smallest true difference (in size) that a t-test with df degrees of freedom and standard error se finds
    with the given power; None when there is no spread (se == 0) to scale it by."""
    if not se > 0 or not df > 0:
        return None
    two_sided = alternative == "two-sided"
    critical = float(scipy_stats.t.ppf(1 - (alpha / 2 if two_sided else alpha), df))

    def shortfall(effect: float) -> float:
        shift = effect / se
        reach = float(scipy_stats.nct.sf(critical, df, shift))
        if two_sided:  # the far tail is ~0 but scipy's nct can return NaN there
            reach += float(np.nan_to_num(scipy_stats.nct.cdf(-critical, df, shift)))
        return reach - power

    high = se
    while shortfall(high) < 0:
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12))


def reach_target(
    started: list[float], seconds: list[float], epochs: list[int], values: list[float | None], target: float
) -> tuple[float, int] | None:
    """First trial (in start order) whose value >= target: (its end in search seconds, epochs spent up to and
    including it)."""
    order = sorted(range(len(started)), key=lambda i: (started[i], i))
    spent = 0
    for i in order:
        spent += int(epochs[i])
        value = values[i]
        if value is not None and not math.isnan(value) and value >= target:
            return started[i] + seconds[i], spent
    return None


def rank_descending(values: dict[str, float]) -> dict[str, float]:
    """Rank by value, 1 = highest; ties share the average of their ranks."""
    names = sorted(values)
    ranks = scipy_stats.rankdata([-values[name] for name in names], method="average")
    return {name: float(rank) for name, rank in zip(names, ranks)}


def best_so_far(xs: list[float], values: list[float | None], grid) -> np.ndarray:
    """Running maximum of values, as a step function of x evaluated on grid (NaN before the first value)."""
    points = sorted((x, v) for x, v in zip(xs, values) if v is not None and not math.isnan(v))
    out = np.full(len(grid), np.nan)
    if not points:
        return out
    px = np.array([x for x, _ in points], dtype=float)
    running = np.maximum.accumulate(np.array([v for _, v in points], dtype=float))
    index = np.searchsorted(px, np.asarray(grid, dtype=float), side="right") - 1
    seen = index >= 0
    out[seen] = running[index[seen]]
    return out


def holm(p: np.ndarray, alpha: float = 1 - CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down on (runs x tests) p-values: the i-th smallest p of a run is held to alpha / (m - i), and
    rejection stops at the first that is not. Returns (levels, rejected), both (runs x tests)."""
    runs, m = p.shape
    order = np.argsort(p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    sorted_levels = np.broadcast_to(alpha / (m - np.arange(m)), (runs, m))
    sorted_rejected = np.cumprod(sorted_p <= sorted_levels, axis=1).astype(bool)
    levels, rejected = np.empty_like(p), np.empty_like(sorted_rejected)
    np.put_along_axis(levels, order, sorted_levels, axis=1)
    np.put_along_axis(rejected, order, sorted_rejected, axis=1)
    return levels, rejected


def holm_adjusted(p_values: list[float]) -> list[float]:
    """Holm's adjusted p-values of one family: a comparison is significant at level a after the correction
    exactly when its adjusted p is <= a (the same step-down as holm())."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
