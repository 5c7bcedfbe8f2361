"""Simulated gate runs: one engine for the gate's false-alarm rate and its power.

A source gives gate runs as per-unit differences from the reference (units of reference 0, as the noise model
stores them; the gate's tests see nothing else), in batches of runs that share one template of units:

- Resampled: real runs of unchanged code (a noise model), recombined a seed at a time: each seed's units come
  together from one real run, so what a seed's cells share, a changed best model and a time cell's work stay as
  measured. The same runs are judged at every drop (every combination when there are few enough, else one fixed
  random sample), with the floors the noise model measured.
- Normal: assumed N(0, sd) per distinct model of the reference, for a machine not at hand (e.g. a GPU); fresh runs
  are drawn for every figure, and no floors (there is no real noise to measure them from).

`failure_rate` takes a drop off every unit (or one tuner's units) and applies the gate's own decision
(decision.failures) to each run: at drop 0 that is the false-alarm rate, above it the power.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from typing import Protocol

import numpy as np

from fmbench.gate import decision, noise
from fmbench.gate.evidence import Unit, cell_name, tuner_of

TARGET_POWER = 0.80
DROPS = np.round(np.arange(0.001, 0.1001, 0.001), 3)  # 0.1 to 10 points, the resolution of a 1,000-image test set
MAX_COMBINATIONS = 20_000  # up to this many, every combination of real runs per seed is simulated (exact bootstrap)

Batch = tuple[list[Unit], np.ndarray]  # template units (reference 0) and (runs x units) differences


class Source(Protocol):
    """Where simulated gate runs come from."""

    floors: dict[str, float] | None  # the least spread each test takes (None: one image)
    template: list[Unit]  # the units of one gate run, in cell order
    count: int  # gate runs per figure
    exact: bool  # every combination of the real runs, not a random sample

    def batches(self) -> Iterable[Batch]: ...


def failure_rate(source: Source, drop: float = 0.0, only: str | None = None) -> float:
    """Share of the source's gate runs the gate fails, with `drop` taken off every unit (or tuner `only`'s units)."""
    failed = runs = 0
    for template, values in source.batches():
        hit = np.array([only is None or tuner_of(u.cell) == only for u in template], dtype=float)
        failed += int(decision.failures(template, values - drop * hit, floors=source.floors).sum())
        runs += len(values)
    return failed / runs


def smallest_drop(rate: Callable[[float], float]) -> tuple[float | None, dict[float, float]]:
    """The smallest drop of the grid with rate(drop) >= TARGET_POWER, by bisection (power grows with the drop)."""
    power, smallest = {}, None
    low, high = 0, len(DROPS) - 1
    while low <= high:
        mid = (low + high) // 2
        power[float(DROPS[mid])] = rate(float(DROPS[mid]))
        if power[float(DROPS[mid])] >= TARGET_POWER:
            smallest, high = float(DROPS[mid]), mid - 1
        else:
            low = mid + 1
    return smallest, dict(sorted(power.items()))


def figures(source: Source, per_tuner: bool = False) -> dict:
    """False-alarm rate and power of the gate on a source's runs; per_tuner: also the power against a drop in one
    tuner's cells alone. The power is measured first: a source that draws its runs anew (Normal) consumes its
    random numbers in this order, and the committed calibrations were made so."""
    smallest, power = smallest_drop(lambda drop: failure_rate(source, drop))
    tuners = list(dict.fromkeys(tuner_of(u.cell) for u in source.template)) if per_tuner else []
    alone = {t: smallest_drop(lambda drop, t=t: failure_rate(source, drop, t))[0] for t in tuners}
    out = {"false_alarm_rate": failure_rate(source), "smallest_drop": smallest, "power": power}
    return out | ({"smallest_drop_per_tuner": alone} if per_tuner else {})


class Resampled:
    """Gate runs made of real runs a seed at a time: each seed's units come together from one real run.

    A seed's block joins only from runs where the gate compared every one of that seed's cells (a failed or
    unmatched cell is already in the direct count). Runs with the same pattern of shared models per seed share one
    family of tests, so each pattern is one batch, judged for all its runs at once."""

    exact: bool

    def __init__(self, model: dict, runs: int, rng: np.random.Generator):
        self.floors = model["floors"]
        by_seed: dict[int, list[list[Unit]]] = {}
        for run in model["runs"]:
            units = noise.units(run)
            for seed in sorted({u.seed for u in units}):
                by_seed.setdefault(seed, []).append([u for u in units if u.seed == seed])
        self.seeds = sorted(by_seed)
        self.blocks = {}
        for seed in self.seeds:
            cells = max((tuple(u.cell for u in block) for block in by_seed[seed]), key=len)
            self.blocks[seed] = [b for b in by_seed[seed] if tuple(u.cell for u in b) == cells]
        sizes = [len(self.blocks[s]) for s in self.seeds]
        total = math.prod(sizes) if sizes else 0  # Python's ints: 20 runs of 16 seeds overflow numpy's int64
        self.exact = total <= MAX_COMBINATIONS
        if self.exact:
            self.choices = np.array(list(itertools.product(*(range(k) for k in sizes))), dtype=int)
        else:
            self.choices = np.column_stack([rng.integers(0, k, runs) for k in sizes])
        self.groups = self._groups()
        # every pattern has the same cells in the same order; only which units share a model differs
        self.template = self.groups[0][0] if self.groups else []

    def _groups(self) -> list[Batch]:
        """(template units, (runs x units) differences) per pattern of shared models."""
        patterns: dict[tuple, list[int]] = {}
        for row, choice in enumerate(self.choices):
            pattern = tuple(_pattern(self.blocks[s][i]) for s, i in zip(self.seeds, choice))
            patterns.setdefault(pattern, []).append(row)
        out = []
        for pattern, rows in patterns.items():
            template = []
            for seed, shape in zip(self.seeds, pattern):
                first = self.blocks[seed][self.choices[rows[0], self.seeds.index(seed)]]
                template += [
                    Unit(u.cell, u.seed, u.time_limited, u.measure, 0.0, 0.0, f"{seed}|{j}", u.step)
                    for u, j in zip(first, shape)
                ]
            values = np.array(
                [[u.current for s, i in zip(self.seeds, self.choices[r]) for u in self.blocks[s][i]] for r in rows]
            )
            out.append((template, values))
        return out

    @property
    def count(self) -> int:
        return len(self.choices)

    def batches(self) -> list[Batch]:
        return self.groups


def _pattern(block: list[Unit]) -> tuple[int, ...]:
    """Which units of a seed's block are the same evidence: each unit's index of the first with its key."""
    first: dict[str, int] = {}
    return tuple(first.setdefault(u.key, j) for j, u in enumerate(block))


class Normal:
    """Assumed noise: N(0, sd) per distinct model of the reference, units that retrain one model drawn together,
    rounded to 0.001 (accuracy on 1,000+ images moves in steps of 0.001)."""

    floors = None
    exact = False

    def __init__(self, reference: dict, sd: float, runs: int, rng: np.random.Generator):
        self.sd, self.count, self.rng = sd, runs, rng
        self.template = [
            Unit(
                cell_name(c["tuner"], c["budget"]),
                int(seed),
                bool(c["time_limited"]),
                "test",
                0.0,
                0.0,
                f"test|{seed}|{run['model']}",
                1 / reference["data"]["test"],
            )
            for c in reference["cells"]
            for seed, run in c["runs"].items()
        ]
        keys = sorted({u.key for u in self.template})
        self.columns = [keys.index(u.key) for u in self.template]
        self.models = len(keys)

    def batches(self) -> list[Batch]:
        """One batch of `count` fresh runs: every call draws anew."""
        drawn = np.round(self.rng.normal(0.0, self.sd, size=(self.count, self.models)), 3)
        return [(self.template, drawn[:, self.columns])]
