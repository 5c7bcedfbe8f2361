"""Across-seed statistics: means with t intervals, differences paired by seed."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """Mean of n values with its two-sided t confidence interval (None bounds when n < 2)."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for n == 1
    low: float | None
    high: float | None


@dataclass(frozen=True)
class PairedDifference:
    """current - reference, paired by seed: mean difference, its interval, and a paired t-test p-value."""

    seeds: tuple[int, ...]
    interval: Interval
    p_value: float | None  # two-sided paired t-test; None when fewer than 2 pairs or no spread


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


def paired_difference(current: dict[int, float], reference: dict[int, float], confidence: float = CONFIDENCE) -> PairedDifference:
    """Differences on the seeds both sides ran; seeds on one side only are left out (they cannot be paired)."""
    seeds = tuple(sorted(set(current) & set(reference)))
    if not seeds:
        raise ValueError("no seed in common: the differences cannot be paired")
    diffs = [current[s] - reference[s] for s in seeds]
    interval = mean_interval(diffs, confidence)
    p_value = None
    if len(seeds) >= 2 and interval.std > 0:
        p_value = float(scipy_stats.ttest_1samp(diffs, 0.0).pvalue)
    return PairedDifference(seeds, interval, p_value)


def detectable_difference(n: int, std: float, alpha: float = 1 - CONFIDENCE, power: float = 0.8) -> float | None:
    """Smallest true mean difference a two-sided paired t-test on n pairs finds with the given power.

    std is the spread of the per-seed differences; None when it cannot be estimated (n < 2 or no spread).
    """
    if n < 2 or not std > 0:
        return None
    df = n - 1
    critical = float(scipy_stats.t.ppf(1 - alpha / 2, df))

    def shortfall(effect: float) -> float:
        shift = effect / std * math.sqrt(n)
        # The far tail is ~0 but scipy's nct can return NaN there.
        reach = float(scipy_stats.nct.sf(critical, df, shift)) + float(np.nan_to_num(scipy_stats.nct.cdf(-critical, df, shift)))
        return reach - power

    high = std
    while shortfall(high) < 0:
        high *= 2
        if high > 1e6 * std:
            return None
    return float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12))


def reach_target(started: list[float], seconds: list[float], epochs: list[int], values: list[float | None], target: float) -> tuple[float, int] | None:
    """First trial (in start order) whose value >= target: (its end in search seconds, epochs spent up to and including it)."""
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
