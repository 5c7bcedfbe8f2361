"""Across-seed statistics: means with t intervals, differences paired by seed."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
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
