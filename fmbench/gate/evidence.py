"""The gate's evidence: which units of evidence each cell gives against the reference, counted once.

Evidence comes in units, one per cell and seed that both the results and the reference ran:
- a trial-limited cell (and the baseline) gives its test accuracy;
- a time-limited cell gives its test accuracy when it did the same work as the reference (same trials and
  search epochs); on a faster or slower machine the deadline buys other work, so it gives instead the best
  validation accuracy over the trials both runs share from the start (same hyperparameters, same epochs),
  which does not depend on speed. How much work fit in the deadline is reported apart, as speed, never as a drop.
Units that retrain the same model (same best hyperparameters and seed) or score the same trials are one
piece of evidence, counted once (the first in cell order). The tests over these units are fmbench.gate.decision's.
"""

from __future__ import annotations

from dataclasses import dataclass

from fmbench.gate import reference as ref_io
from fmbench.registry import BASELINE
from fmbench.resultset import ResultSet, cell_order


def cell_name(tuner: str, budget: str) -> str:
    return tuner if tuner == BASELINE else f"{tuner} {budget}"


def tuner_of(cell: str) -> str:
    """The tuner of a cell's name (tuner names have no spaces)."""
    return cell.split(" ")[0]


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


KINDS = ("untimed", "time at the deadline", "time at matched work")


def kind(unit: Unit) -> str:
    """How a unit is compared: an untimed cell; a time-limited one that did the reference's work (its test
    accuracy at the deadline); or one that did other work (best validation accuracy over the trials both share)."""
    if not unit.time_limited:
        return KINDS[0]
    return KINDS[1] if unit.measure == "test" else KINDS[2]
