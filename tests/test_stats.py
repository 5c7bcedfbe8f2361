"""stats.py: one definition of a difference, its margin and its detectable drop, against scipy and simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from fmbench import stats

REF = {1: 0.70, 2: 0.65, 3: 0.80, 4: 0.75}
CUR = {1: 0.69, 2: 0.66, 3: 0.77, 4: 0.73}


def test_paired_less_margin_is_the_one_sided_t_bound():
    d = stats.paired_difference(CUR, REF, alternative="less")
    diffs = np.array([CUR[s] - REF[s] for s in REF])
    se = diffs.std(ddof=1) / math.sqrt(4)
    assert d.mean == pytest.approx(diffs.mean())
    assert d.margin == pytest.approx(sps.t.ppf(0.95, 3) * se)
    assert d.p_value == pytest.approx(sps.ttest_rel(list(CUR.values()), list(REF.values()), alternative="less").pvalue)


def test_two_sided_interval_is_scipys():
    d = stats.paired_difference(CUR, REF)
    diffs = np.array([CUR[s] - REF[s] for s in REF])
    low, high = sps.t.interval(0.95, 3, loc=diffs.mean(), scale=diffs.std(ddof=1) / 2)
    assert (d.low, d.high) == (pytest.approx(low), pytest.approx(high))


@pytest.mark.parametrize("alternative, sides", [("less", 1), ("two-sided", 2)])
def test_detectable_drop_has_80_percent_power_by_simulation(alternative, sides):
    d = stats.paired_difference(CUR, REF, alternative=alternative)
    sd = d.se * 2
    samples = np.random.default_rng(0).normal(-d.detectable, sd, size=(40000, 4))
    t = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / 2)
    critical = sps.t.ppf(1 - 0.05 / sides, 3)
    power = np.mean(t < -critical) + (np.mean(t > critical) if sides == 2 else 0)
    assert power == pytest.approx(0.8, abs=0.015)


def test_zero_spread_and_one_pair_are_unknown_not_a_floor():
    d = stats.paired_difference({1: 0.6, 2: 0.7}, {1: 0.6, 2: 0.7}, alternative="less")
    assert d.unknown == "zero spread" and d.margin is None and d.detectable is None and d.p_value is None
    assert stats.paired_difference({1: 0.6}, {1: 0.7}).unknown == "one pair"
    # float32 accuracies: differences that are equal up to rounding are zero spread, not a huge t
    floats = stats.paired_difference({1: 0.7009999752044678, 2: 0.6510000228881836}, {1: 0.7509999752, 2: 0.7010000228})
    assert floats.unknown == "zero spread" and floats.p_value is None


def test_detectable_at_a_holm_level_has_80_percent_power_there_and_is_larger():
    d = stats.paired_difference(CUR, REF)
    level = 0.05 / 3  # Holm's first step in a family of three
    effect = d.detectable_at(level)
    assert effect > d.detectable == pytest.approx(d.detectable_at(0.05))
    samples = np.random.default_rng(1).normal(effect, d.se * 2, size=(40000, 4))
    t = samples.mean(axis=1) / (samples.std(axis=1, ddof=1) / 2)
    assert np.mean(np.abs(t) > sps.t.ppf(1 - level / 2, 3)) == pytest.approx(0.8, abs=0.015)
    assert stats.paired_difference({1: 0.6, 2: 0.7}, {1: 0.6, 2: 0.7}).detectable_at(level) is None
