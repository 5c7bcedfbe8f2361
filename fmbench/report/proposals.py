"""Report section: where each model-based tuner's proposals sit in the MLP space, against uniform draws of it.

A model can pile its proposals onto a corner of the space (TPE's onto units 32 and dropout 0.0 or 0.5 in the deeper
layers); the best-model table hides it because only one trial per run is retrained. Every reference share here is
computed from `fmbench.space.MLP`, the space the tuners searched, so a change of the space changes it too.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fmbench.registry import RUNNERS
from fmbench.report.tables import table
from fmbench.resultset import ResultSet
from fmbench.space import MLP, Knob, Space

CONTINUOUS_BINS = 10  # a continuous knob (the learning rate) is read over ten equal bins of its sampling scale
PROPOSERS = ("model", "random")  # the model's proposals, then the random start of the same tuners as a control


@dataclass(frozen=True)
class KnobGroup:
    """Knobs read as one distribution (every layer's units pooled): one grid, or one continuous range cut into
    `CONTINUOUS_BINS` equal bins of its quantile scale (log for a log knob). Its first and last bin are its ends."""

    name: str
    knobs: tuple[Knob, ...]

    def __post_init__(self) -> None:
        first = self.knobs[0]
        shape = lambda k: (k.kind, k.grid, k.low, k.high, k.log)  # noqa: E731 - one-line key
        if any(shape(k) != shape(first) for k in self.knobs):
            raise ValueError(f"knob group {self.name!r}: its knobs differ in range; pooling them would mix scales")

    @property
    def bins(self) -> int:
        grid = self.knobs[0].grid
        return len(grid) if grid is not None else CONTINUOUS_BINS

    @property
    def uniform_ends(self) -> float:
        """The share of uniform draws that land in the two end bins: every bin of a uniform draw is equally likely
        (a grid knob's quantile function steps evenly through its grid; a continuous knob's bins are its quantiles)."""
        return 2 / self.bins

    @property
    def ends_label(self) -> str:
        grid = self.knobs[0].grid
        if grid is None:
            return f"lowest or highest 1/{CONTINUOUS_BINS}"
        return f"{grid[0]} or {grid[-1]}"

    def bin_of(self, value) -> int | None:
        """The bin a proposed value falls in; None for a value off the space (rows of an older space)."""
        knob = self.knobs[0]
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        grid = knob.grid
        if grid is not None:
            # Matched with a tolerance: a library may report 0.30000000000000004 for the grid's 0.3.
            hits = [i for i, g in enumerate(grid) if math.isclose(value, g, rel_tol=1e-9, abs_tol=1e-12)]
            return hits[0] if hits else None
        if not knob.low * (1 - 1e-12) <= value <= knob.high * (1 + 1e-12):
            return None
        edges = [knob.value_at(k / CONTINUOUS_BINS) for k in range(1, CONTINUOUS_BINS)]
        return bisect.bisect_right(edges, value)


def knob_groups(space: Space = MLP) -> tuple[KnobGroup, ...]:
    """The space's knobs, one group per name with its layer index dropped (units_0 .. units_4 -> units)."""
    groups: dict[str, list[Knob]] = {}
    for knob in space.knobs:
        groups.setdefault(re.sub(r"_\d+$", "", knob.name), []).append(knob)
    return tuple(KnobGroup(name, tuple(knobs)) for name, knobs in groups.items())


@dataclass(frozen=True)
class GroupShares:
    """One knob group over a set of proposals: how many values, the share at the ends and its distance from
    uniform."""

    group: str
    n: int  # values counted: a proposal of three layers gives three units
    ends: float  # share of the values in the group's two end bins
    uniform_ends: float  # the same share for uniform draws of the space
    tv: float  # total-variation distance of the values' bin shares from uniform: 0 same, 1 disjoint


@dataclass(frozen=True)
class ProposalRow:
    """One model-based tuner's proposals by one proposer (its model, or its random start), budgets pooled."""

    tuner: str
    budgets: tuple[str, ...]
    proposed_by: str
    proposals: int  # trials
    shares: tuple[GroupShares, ...]  # in knob_groups order


def group_shares(group: KnobGroup, bins: Iterable[int]) -> GroupShares:
    """Ends share and total-variation distance of values already put in the group's bins."""
    bins = list(bins)
    n = len(bins)
    if n == 0:
        return GroupShares(group.name, 0, math.nan, group.uniform_ends, math.nan)
    counts = [0] * group.bins
    for b in bins:
        counts[b] += 1
    uniform = 1 / group.bins
    tv = sum(abs(c / n - uniform) for c in counts) / 2
    return GroupShares(group.name, n, (counts[0] + counts[-1]) / n, group.uniform_ends, tv)


def proposal_shares(hyperparameters: Iterable[dict], space: Space = MLP) -> tuple[GroupShares, ...]:
    """Each knob group's shares over a set of proposals; a knob counts where the proposal switched it on."""
    proposals = list(hyperparameters)
    shares = []
    for group in knob_groups(space):
        bins = [
            group.bin_of(values[knob.name])
            for values in proposals
            for knob in group.knobs
            if knob.name in values and space.is_active(knob, values)
        ]
        shares.append(group_shares(group, [b for b in bins if b is not None]))
    return tuple(shares)


def proposal_rows(rs: ResultSet, space: Space = MLP) -> list[ProposalRow]:
    """A row per model-based tuner and proposer over the current runs of the space; none without a model's
    proposal."""
    # The run's row says which space it searched; trials of no current run drop out here.
    trials = rs.trials.drop(columns="space", errors="ignore").merge(rs.runs[["run_id", "space"]], on="run_id")
    # A trial continuing another (a promotion) re-trains an earlier proposal: counted once, as its first trial.
    fresh = trials["parent_trial_id"].fillna("").astype(str) == ""
    trials = trials[fresh & (trials["space"] == space.name) & trials["proposed_by"].isin(PROPOSERS)]
    trials = trials[trials["tuner"].isin([name for name, runner in RUNNERS.items() if runner.model_based])]
    if not (trials["proposed_by"] == "model").any():
        return []
    rows = []
    for tuner in (name for name in RUNNERS if name in set(trials["tuner"])):
        own = trials[trials["tuner"] == tuner]
        for proposer in PROPOSERS:
            picked = own[own["proposed_by"] == proposer]
            if picked.empty:
                continue
            hps = [_values(text) for text in picked["hyperparameters"]]
            budgets = tuple(sorted(set(picked["budget"])))
            rows.append(ProposalRow(tuner, budgets, proposer, len(picked), proposal_shares(hps, space)))
    return rows if any(s.n for row in rows for s in row.shares) else []


def section(rs: ResultSet, space: Space = MLP) -> list[str]:
    """The markdown section; empty when no model proposed a trial of the space."""
    rows = proposal_rows(rs, space)
    if not rows:
        return []
    groups = knob_groups(space)
    headers = ["tuner", "budgets", "proposed by", "trials"] + [
        f"{g.name} {g.ends_label} (uniform 2/{g.bins})" for g in groups
    ]
    body = [
        [row.tuner, ", ".join(row.budgets), row.proposed_by, str(row.proposals)] + [_cell(s) for s in row.shares]
        for row in rows
    ]
    return [
        "## Where the models' proposals sit",
        "",
        "A cell reads *share at the ends · TV (n)*: the share of a tuner's n proposed values at the two ends of "
        "the knob's range (the header gives uniform draws' share there), then the total-variation distance "
        "(TV: 0 = uniform, 1 = disjoint from it) of their distribution from uniform. Units and dropout pool every "
        f"layer a proposal switched on; the learning rate is read in {CONTINUOUS_BINS} equal bins of its log range; "
        "budgets are pooled per tuner. A small uniform sample is itself some way from uniform (its TV shrinks as n "
        "grows): read each *model* row against the same tuner's *random* row, its random start.",
        "",
        table(body, headers),
        "",
    ]


def _cell(shares: GroupShares) -> str:
    if shares.n == 0:
        return "–"
    return f"{shares.ends:.0%} · {shares.tv:.2f} (n={shares.n})"


def _values(text: str) -> dict:
    try:
        values = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}  # the loader validates runs' JSON only; an unreadable trial counts no value
    return values if isinstance(values, dict) else {}
