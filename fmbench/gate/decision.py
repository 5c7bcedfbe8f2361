"""The gate's decision: one family of one-sided paired t-tests for a drop over the evidence's units, with Holm's
correction (the units, counted once, are fmbench.gate.evidence's).

The family (deciding tests): one per tuner, over all its cells, and one over every cell ("all cells"). A tuner with
one cell is decided by that cell's row; a tuner with several has a row of its own ("random, all budgets"), and its
cells' rows are shown but do not decide. The baseline is a tuner of one cell: its row guards the training stack
(data, model, fit, scoring), on which every tuner stands. A regression that a change makes usually sits in one
tuner (its search logic) or in every cell (the stack), and each has one test that sees all its evidence; per-cell
deciding rows would split a tuner's evidence and make every test pay for a longer family (with 17 deciding rows and
3 seeds, a drop confined to one tuner had to exceed about 13 points to be caught).

Every test is over seeds: each seed's value is the mean of its units' differences, because the cells of one seed
are not independent: they share the weights' and the data order's random stream, so a harmless change of random
draws moves a seed's cells together (results/noise: with the weight seed shifted, one seed's 11 untimed smoke cells
fell 1.7 points on average with a spread of 0.9 between them). A test decides with MIN_SEEDS seeds or more.
Holm's step-down keeps the chance of any false alarm in the whole family at ALPHA; a drop confined to one test has
the family's smallest p, so it is judged at Holm's first level, ALPHA / (deciding tests): the level at which each
row states the drop it detects.

Accuracies count images, so the spread of a test's differences is taken as at least one image of the evaluated
set (the unit's `step`): a spread below that is rounding luck. With floors (measured noise: the reference's repeats,
fmbench.gate.noise), the spread is taken as at least the spread real harmless runs showed for that test: a few
seeds cannot estimate their own spread, and a test whose differences happened to agree failed a harmless run
(results/noise: tpe-hyperband epochs12, all three seeds 1.5 points down with the weight seed shifted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from fmbench.gate.evidence import Unit, tuner_of
from fmbench.stats import Difference, holm, paired_difference

ALPHA = 0.05
ALL_CELLS = "all cells"
MIN_SEEDS = 2  # a single seed has no spread to test; the gate profile runs 10 (docs/gate.md)


def tuner_test(tuner: str) -> str:
    """The name of a tuner's own row when it has several cells."""
    return f"{tuner}, all budgets"


@dataclass(frozen=True)
class Test:
    """One test: its distinct units, the difference, and Holm's verdict where it is in the deciding family."""

    name: str
    units: tuple[Unit, ...]
    duplicates: int  # units left out as the same evidence as another
    difference: Difference | None
    p: float  # one-sided p for a drop; 1.0 where there is nothing to test
    level: float | None = None  # Holm's level for this p (None: shown, not deciding)
    rejected: bool = False
    measures: tuple[str, ...] = field(default=())
    first_level: float | None = None  # Holm's first level, ALPHA / deciding tests: where a lone drop is judged

    @property
    def detectable(self) -> float | None:
        """The smallest drop this test catches with 80% power at Holm's first level (None: not deciding, or no
        spread to scale by)."""
        if self.first_level is None or self.difference is None:
            return None
        return self.difference.detectable_at(self.first_level)


def tests(units: list[Unit]) -> list[tuple[str, list[int], bool]]:
    """Every test with the indices of its distinct units and whether it decides: each cell's row in the order
    given, then each tuner's own row (tuners of several cells), then all cells."""

    def distinct(chosen: list[int]) -> list[int]:
        seen: set[str] = set()
        return [i for i in chosen if units[i].key not in seen and not seen.add(units[i].key)]

    def decides(idx: list[int]) -> bool:
        return len({units[i].seed for i in idx}) >= MIN_SEEDS

    cells = list(dict.fromkeys(u.cell for u in units))
    tuners = list(dict.fromkeys(tuner_of(cell) for cell in cells))
    cells_of = {t: [cell for cell in cells if tuner_of(cell) == t] for t in tuners}
    out = []
    for cell in cells:
        idx = distinct([i for i, u in enumerate(units) if u.cell == cell])
        out.append((cell, idx, len(cells_of[tuner_of(cell)]) == 1 and decides(idx)))
    for t in tuners:
        if len(cells_of[t]) > 1:
            idx = distinct([i for i, u in enumerate(units) if tuner_of(u.cell) == t])
            out.append((tuner_test(t), idx, decides(idx)))
    every = distinct(list(range(len(units))))
    out.append((ALL_CELLS, every, decides(every)))
    return out


def by_seed(diffs: np.ndarray, seeds: list[int]) -> np.ndarray:
    """(runs x units) differences -> (runs x seeds): each seed's mean over its units."""
    return np.column_stack(
        [diffs[:, [j for j, s in enumerate(seeds) if s == seed]].mean(axis=1) for seed in sorted(set(seeds))]
    )


def p_drops(reference: np.ndarray, current: np.ndarray, step: float, seeds: list[int]) -> np.ndarray:
    """One-sided p for a drop, per row of (runs x units) matrices: a paired t-test along each row over per-seed
    means (`seeds` names each column's seed), the spread taken as at least `step` (see the module docstring).
    A single seed is no test (p = 1)."""
    diffs = by_seed(np.round(current - reference, 9), seeds)
    runs, n = diffs.shape
    if n < 2:
        return np.ones(runs)
    se = np.maximum(diffs.std(axis=1, ddof=1), step) / np.sqrt(n)
    return scipy_stats.t.cdf(diffs.mean(axis=1) / se, n - 1)


def step(name: str, units: list[Unit], idx: list[int], floors: dict[str, float] | None) -> float:
    """The least spread a test takes: one image, or the spread measured on harmless runs for this test."""
    return max([units[i].step for i in idx] + [(floors or {}).get(name, 0.0)])


def _family(units: list[Unit]) -> list[tuple[str, list[int]]]:
    return [(name, idx) for name, idx, deciding in tests(units) if deciding]


def failures(
    units: list[Unit], current: np.ndarray, alpha: float = ALPHA, floors: dict[str, float] | None = None
) -> np.ndarray:
    """For many simulated runs at once, (runs x units) current values: does each run fail the gate?"""
    reference = np.broadcast_to([u.reference for u in units], current.shape)
    p = np.column_stack(
        [
            p_drops(reference[:, idx], current[:, idx], step(name, units, idx, floors), [units[i].seed for i in idx])
            for name, idx in _family(units)
        ]
    )
    return holm(p, alpha)[1].any(axis=1)


def _per_seed(chosen: list[Unit]) -> tuple[dict, dict]:
    """(current, reference) as the test pairs them: per seed, the mean of its units."""
    seeds = sorted({u.seed for u in chosen})
    mean = lambda seed, field: float(np.mean([getattr(u, field) for u in chosen if u.seed == seed]))  # noqa: E731
    return {s: mean(s, "current") for s in seeds}, {s: mean(s, "reference") for s in seeds}


def decide(units: list[Unit], alpha: float = ALPHA, floors: dict[str, float] | None = None) -> list[Test]:
    """Every test over these units with its figures for the table; the deciding ones are Holm-corrected. floors:
    the measured spreads per test (None: one image is the only floor)."""
    found = tests(units)
    reference, current = np.array([[u.reference for u in units]]), np.array([[u.current for u in units]])
    p = [
        float(
            p_drops(reference[:, idx], current[:, idx], step(name, units, idx, floors), [units[i].seed for i in idx])[0]
        )
        if idx
        else 1.0
        for name, idx, _ in found
    ]
    family = [j for j, (_, _, deciding) in enumerate(found) if deciding]
    levels, rejected = holm(np.array([[p[j] for j in family]]), alpha)
    verdicts = {j: (float(levels[0, k]), bool(rejected[0, k])) for k, j in enumerate(family)}
    first_level = alpha / len(family) if family else None
    out = []
    for j, (name, idx, deciding) in enumerate(found):
        chosen = [units[i] for i in idx]
        covered = [u for u in units if name in (ALL_CELLS, u.cell, tuner_test(tuner_of(u.cell)))]
        difference = (
            paired_difference(*_per_seed(chosen), alternative="less", step=step(name, units, idx, floors))
            if chosen
            else None
        )
        level, reject = verdicts.get(j, (None, False))
        out.append(
            Test(
                name,
                tuple(chosen),
                len(covered) - len(chosen),
                difference,
                p[j],
                level,
                reject,
                tuple(sorted({u.measure for u in chosen})),
                first_level if deciding else None,
            )
        )
    return out
