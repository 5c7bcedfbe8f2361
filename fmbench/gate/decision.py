"""The gate's decision: which evidence each cell gives, counted once, and one family of tests with Holm's correction.

Evidence comes in units, one per cell and seed that both the results and the reference ran:
- a trial-limited cell (and the baseline) gives its test accuracy;
- a time-limited cell gives its test accuracy when it did the same work as the reference (same trials and
  search epochs); on a faster or slower machine the deadline buys other work, so it gives instead the best
  validation accuracy over the trials both runs share from the start (same hyperparameters, same epochs),
  which does not depend on speed. How much work fit in the deadline is reported apart, as speed, never as a drop.
Units that retrain the same model (same best hyperparameters and seed) or score the same trials are one
piece of evidence, counted once (the first in cell order).

The family: one test per cell (with MIN_UNITS or more distinct units), one over the cells without a time limit,
one over the time-limited cells and one over every distinct unit ("all cells"), each a one-sided paired t-test
for a drop; a drop spread over many cells shows in the pooled tests though no single cell can show it. A cell's
units are its seeds, which are independent. The pooled tests are over seeds too: each seed's value is the mean
of its units' differences, because the cells of one seed are not independent: they share the weights' and the
data order's random stream, so a harmless change of random draws moves all of a seed's cells together
(results/noise: with the weight seed shifted, one seed's 11 untimed cells fell 1.7 points on average with a
spread of 0.9 between them). A t-test that counted those units as independent failed such runs.
Holm's step-down keeps the chance of any false alarm in the whole family at ALPHA.
Accuracies count images, so the spread of the differences is taken as at least one image of the evaluated set
(the unit's `step`): a spread below that is rounding luck, and a t-test that believed it would raise false alarms.
Where every difference is identical, a drop of a few images in every unit still fails. With a noise model
(results/noise/<profile>.json, `floors`), the spread is taken as at least the spread measured on real harmless
runs, per kind of unit and per pooled test: three seeds cannot estimate their own spread, and a cell whose three
differences happened to agree failed a harmless run (results/noise: tpe-hyperband epochs12, all three seeds 1.5
points down with the weight seed shifted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

from fmbench.gate import reference as ref_io
from fmbench.registry import BASELINE
from fmbench.resultset import ResultSet, cell_order
from fmbench.stats import Difference, holm, paired_difference

ALPHA = 0.05
ALL_CELLS = "all cells"
UNTIMED = "cells without time limit"
TIMED = "time-limited cells"
MIN_UNITS = 3


def cell_name(tuner: str, budget: str) -> str:
    return tuner if tuner == BASELINE else f"{tuner} {budget}"


@dataclass(frozen=True)
class Unit:
    """One cell and seed: the measure compared, its reference and current value, and which evidence it is."""

    cell: str
    seed: int
    time_limited: bool
    measure: str  # "test" or "val" (best validation accuracy over the matched trials)
    reference: float
    current: float
    key: str  # units with the same key are the same evidence
    step: float  # one image of the evaluated set, as accuracy: the finest difference the measure can show


@dataclass(frozen=True)
class Cell:
    """What the results hold for one cell of the reference, apart from the accuracy evidence."""

    tuner: str
    budget: str
    time_limited: bool
    reference_seeds: tuple[int, ...]
    current_seeds: tuple[int, ...]  # seeds with a finished run
    failed: tuple[tuple[int, str], ...] = ()  # (seed, error)
    missing: tuple[int, ...] = ()  # reference seeds with no current row at all
    unmatched: tuple[int, ...] = ()  # seeds with no work in common with the reference
    work: tuple[float, float] | None = None  # mean trials completed: reference, current (time-limited cells)
    new: bool = False  # in the results, not in the reference

    @property
    def name(self) -> str:
        return cell_name(self.tuner, self.budget)


@dataclass(frozen=True)
class Test:
    """One test of the family: its distinct units, the difference, and Holm's verdict."""

    name: str
    units: tuple[Unit, ...]
    duplicates: int  # units left out as the same evidence as another
    difference: Difference | None
    p: float  # one-sided p for a drop; 1.0 where there is nothing to test
    level: float | None = None  # Holm's level for this p
    rejected: bool = False
    measures: tuple[str, ...] = field(default=())


def matched_trials(reference: list, current: list) -> int:
    """How many trials, from the first, both runs share: same hyperparameters and epochs."""
    k = 0
    for (ref_hps, ref_epochs, _), (cur_hps, cur_epochs, _) in zip(reference, current):
        if ref_hps != cur_hps or ref_epochs != cur_epochs:
            break
        k += 1
    return k


def _unit(name: str, seed: int, time_limited: bool, ref: dict, cur: dict, sizes: dict) -> Unit | None:
    same_work = (ref["trials_completed"], ref["search_epochs"]) == (cur["trials_completed"], cur["search_epochs"])
    if not time_limited or same_work:
        return Unit(
            name,
            seed,
            time_limited,
            "test",
            ref["test_accuracy"],
            cur["test_accuracy"],
            f"test|{seed}|{cur['model']}",
            1 / sizes["test"],
        )
    k = matched_trials(ref["trials"], cur["trials"])
    if k == 0:
        return None
    trials = cur["trials"][:k]
    key = f"val|{seed}|" + ",".join(f"{hps}:{epochs}" for hps, epochs, _ in trials)
    return Unit(
        name,
        seed,
        time_limited,
        "val",
        max(t[2] for t in ref["trials"][:k]),
        max(t[2] for t in trials),
        key,
        1 / sizes["val"],
    )


def evidence(rs: ResultSet, reference: dict) -> tuple[list[Cell], list[Unit]]:
    """Per cell of the reference and of the results: its status, and its units in cell order."""
    stored = {(c["tuner"], c["budget"]): c for c in reference["cells"]}
    cells, units = [], []
    for tuner, budget in cell_order(set(stored) | set(rs.cells())):
        name, group = cell_name(tuner, budget), rs.cell_runs(tuner, budget)
        if (tuner, budget) not in stored:
            cells.append(
                Cell(
                    tuner,
                    budget,
                    bool(group["max_seconds"].notna().any()),
                    (),
                    tuple(int(s) for s in group["seed"]),
                    new=True,
                )
            )
            continue
        spec = stored[(tuner, budget)]
        ref_runs = {int(s): run for s, run in spec["runs"].items()}
        ok = {int(r.seed): ref_io.run_record(rs, r) for r in group[~group["failed"]].itertuples()}
        failed = tuple((int(r.seed), r.error or "no test accuracy") for r in group[group["failed"]].itertuples())
        unmatched = []
        for seed in sorted(set(ref_runs) & set(ok)):
            unit = _unit(name, seed, spec["time_limited"], ref_runs[seed], ok[seed], reference["data"])
            if unit is None:
                unmatched.append(seed)
            else:
                units.append(unit)
        work = None
        if spec["time_limited"] and ok:
            mean = lambda runs: sum(r["trials_completed"] for r in runs) / len(runs)  # noqa: E731 - one-line helper
            work = (mean(list(ref_runs.values())), mean(list(ok.values())))
        missing = tuple(sorted(set(ref_runs) - set(int(s) for s in group["seed"])))
        cells.append(
            Cell(
                tuner,
                budget,
                spec["time_limited"],
                tuple(sorted(ref_runs)),
                tuple(sorted(ok)),
                failed,
                missing,
                tuple(unmatched),
                work,
            )
        )
    return cells, units


POOLED = (UNTIMED, TIMED, ALL_CELLS)  # tested over per-seed means of their units
KINDS = ("untimed", "time at the deadline", "time at matched work")


def kind(unit: Unit) -> str:
    """How a unit is compared: an untimed cell; a time-limited one that did the reference's work (its test
    accuracy at the deadline); or one that did other work (best validation accuracy over the trials both share)."""
    if not unit.time_limited:
        return KINDS[0]
    return KINDS[1] if unit.measure == "test" else KINDS[2]


def tests(units: list[Unit]) -> list[tuple[str, list[int], bool]]:
    """Every test with the indices of its distinct units and whether it is in the deciding family: cells in the
    order given, then the pooled ones. A cell joins the family with MIN_UNITS or more distinct units: with fewer,
    its t-test has one degree of freedom at most and would only dilute Holm's levels; its p is shown all the same.
    A pooled test decides with two seeds or more."""

    def distinct(chosen: list[int]) -> list[int]:
        seen: set[str] = set()
        return [i for i in chosen if units[i].key not in seen and not seen.add(units[i].key)]

    names = list(dict.fromkeys(u.cell for u in units))
    cells = [(name, distinct([i for i, u in enumerate(units) if u.cell == name])) for name in names]
    out = [(name, idx, len(idx) >= MIN_UNITS) for name, idx in cells]
    timed = [i for i, u in enumerate(units) if u.time_limited]
    untimed = [i for i, u in enumerate(units) if not u.time_limited]
    pooled = [(UNTIMED, untimed), (TIMED, timed)] if timed and untimed else []
    pooled.append((ALL_CELLS, list(range(len(units)))))
    for name, chosen in pooled:
        idx = distinct(chosen)
        out.append((name, idx, len({units[i].seed for i in idx}) >= 2))
    return out


def by_seed(diffs: np.ndarray, seeds: list[int]) -> np.ndarray:
    """(runs x units) differences -> (runs x seeds): each seed's mean over its units."""
    return np.column_stack(
        [diffs[:, [j for j, s in enumerate(seeds) if s == seed]].mean(axis=1) for seed in sorted(set(seeds))]
    )


def p_drops(reference: np.ndarray, current: np.ndarray, step: float, seeds: list[int] | None = None) -> np.ndarray:
    """One-sided p for a drop, per row of (runs x units) matrices: a paired t-test along each row (over per-seed
    means where `seeds` names each column's seed), the spread of the differences taken as at least `step` (see the
    module docstring). A single unit, or a single seed, is no test (p = 1)."""
    diffs = np.round(current - reference, 9)
    if seeds is not None:
        diffs = by_seed(diffs, seeds)
    runs, n = diffs.shape
    if n < 2:
        return np.ones(runs)
    se = np.maximum(diffs.std(axis=1, ddof=1), step) / np.sqrt(n)
    return scipy_stats.t.cdf(diffs.mean(axis=1) / se, n - 1)


def _step(name: str, units: list[Unit], idx: list[int], floors: dict[str, float] | None) -> float:
    """The least spread a test takes: one image, or the spread measured on harmless runs (the noise model's floor
    for a pooled test's per-seed means, or for the cell's kinds of unit)."""
    image = max(units[i].step for i in idx)
    if not floors:
        return image
    if name in POOLED:
        return max(image, floors.get(name, 0.0))
    return max([image] + [floors.get(kind(units[i]), 0.0) for i in idx])


def _seeds(name: str, units: list[Unit], idx: list[int]) -> list[int] | None:
    return [units[i].seed for i in idx] if name in POOLED else None


def failures(
    units: list[Unit], current: np.ndarray, alpha: float = ALPHA, floors: dict[str, float] | None = None
) -> np.ndarray:
    """For many simulated runs at once, (runs x units) current values: does each run fail the gate?"""
    reference = np.broadcast_to([u.reference for u in units], current.shape)
    family = [(name, idx) for name, idx, deciding in tests(units) if deciding]
    p = np.column_stack(
        [
            p_drops(reference[:, idx], current[:, idx], _step(name, units, idx, floors), _seeds(name, units, idx))
            for name, idx in family
        ]
    )
    return holm(p, alpha)[1].any(axis=1)


def _paired(name: str, chosen: list[Unit]) -> tuple[dict, dict]:
    """(current, reference) as the test pairs them: per unit, or for a pooled test per seed (its units' mean)."""
    if name not in POOLED:
        return {i: u.current for i, u in enumerate(chosen)}, {i: u.reference for i, u in enumerate(chosen)}
    seeds = sorted({u.seed for u in chosen})
    mean = lambda seed, field: float(np.mean([getattr(u, field) for u in chosen if u.seed == seed]))  # noqa: E731
    return {s: mean(s, "current") for s in seeds}, {s: mean(s, "reference") for s in seeds}


def decide(units: list[Unit], alpha: float = ALPHA, floors: dict[str, float] | None = None) -> list[Test]:
    """Every test over these units with its figures for the table; the family's are Holm-corrected. floors: the
    noise model's measured spreads (None: one image is the only floor)."""
    found = tests(units)
    reference, current = np.array([[u.reference for u in units]]), np.array([[u.current for u in units]])
    p = [
        float(p_drops(reference[:, idx], current[:, idx], _step(name, units, idx, floors), _seeds(name, units, idx))[0])
        if idx
        else 1.0
        for name, idx, _ in found
    ]
    family = [j for j, (_, _, deciding) in enumerate(found) if deciding]
    levels, rejected = holm(np.array([[p[j] for j in family]]), alpha)
    verdicts = {j: (float(levels[0, k]), bool(rejected[0, k])) for k, j in enumerate(family)}
    out = []
    for j, (name, idx, _) in enumerate(found):
        chosen = [units[i] for i in idx]
        total = (
            len([u for u in units if u.cell == name])
            if name not in POOLED
            else len([u for u in units if name == ALL_CELLS or u.time_limited == (name == TIMED)])
        )
        difference = (
            paired_difference(*_paired(name, chosen), alternative="less", step=_step(name, units, idx, floors))
            if chosen
            else None
        )
        level, reject = verdicts.get(j, (None, False))
        out.append(
            Test(
                name,
                tuple(chosen),
                total - len(chosen),
                difference,
                p[j],
                level,
                reject,
                tuple(sorted({u.measure for u in chosen})),
            )
        )
    return out
