"""The gate's verdict on one result set against a reference: the table's rows, each row's verdict, and why it fails.

`fmbench check` renders these rows (fmbench.gate.check), and the noise model (fmbench.gate.calibrate) and the
history across commits (fmbench.history) judge real runs with them, so every caller fails exactly what the CLI
fails. The decision itself (the units and the family of tests) is fmbench.gate.decision's.
"""

from __future__ import annotations

from fmbench.gate import decision, evidence, noise
from fmbench.gate import reference as ref_io
from fmbench.resultset import ResultSet

Row = tuple[str, evidence.Cell | None, decision.Test]  # one row of the table: a cell (None: pooled) and its test


def check(rs: ResultSet, reference: dict, floors: dict[str, float] | None = None) -> tuple[list[str], list[Row]]:
    """(warnings, table) of a result set against a reference; raises RegressError if they are not comparable.
    floors: a noise model's; by default those of the noise the reference's repeats measured (none for a single run)."""
    warnings = ref_io.check_comparable(rs, reference)
    cells, units = evidence.evidence(rs, reference)
    return warnings, rows(cells, decision.decide(units, floors=floors or reference_floors(reference)))


def reference_floors(reference: dict) -> dict[str, float] | None:
    """The floors the noise of the reference's own repeats gives a check of one run against it (None: one run)."""
    return noise.floors_of(reference.get("noise_sd"), int(reference.get("repeats", 1)))


def rows(cells: list[evidence.Cell], tests: list[decision.Test]) -> list[Row]:
    """(name, cell, test) per cell of either side, then the pooled rows (each tuner's of several cells, all cells)."""
    by_name = {t.name: t for t in tests}
    out: list[Row] = [(c.name, c, by_name.get(c.name, decision.Test(c.name, (), 0, None, 1.0))) for c in cells]
    names = {c.name for c in cells}
    return out + [(t.name, None, t) for t in tests if t.name not in names]


def verdict(cell: evidence.Cell | None, test: decision.Test) -> str:
    if cell is not None and cell.new:
        return "new"
    if cell is not None and (cell.failed or cell.missing):
        return "REGRESSION" if cell.current_seeds or cell.failed else "missing"
    if cell is not None and test.level is None:
        return "in pooled"  # too few distinct units to decide alone: judged by the pooled rows below
    return "REGRESSION" if test.rejected else "ok"


def failing(table: list[Row]) -> list[str]:
    return [name for name, cell, test in table if verdict(cell, test) in ("REGRESSION", "missing")]


def message(name: str, cell: evidence.Cell | None, test: decision.Test) -> str:
    """One line saying why this row fails."""
    if cell is not None and not cell.current_seeds and not cell.failed:
        return (
            f"{name}: in the reference but not in the results; run it, or --update-reference if it was "
            "dropped on purpose"
        )
    parts = []
    if cell is not None and cell.failed:
        parts.append("failed run(s) " + "; ".join(f"seed {s}: {err}" for s, err in cell.failed))
    if cell is not None and cell.missing:
        parts.append(f"seed(s) {', '.join(map(str, cell.missing))} missing from the results (a shard not merged?)")
    if test.rejected and test.difference is not None:
        parts.append(
            f"accuracy dropped {-test.difference.mean * 100:.2f} points over {len(test.units)} unit(s), "
            f"p = {test.p:.3g} <= Holm level {test.level:.3g}"
        )
    return f"{name}: " + "; ".join(parts)
