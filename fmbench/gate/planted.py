"""The gate against planted faults: one row per fault folder (scripts/planted_run.sh: a fault's patch and the gate's
cells run with it), judged against the reference as `make gate` judges a change, with how many points the fault
moved each deciding test and which of them failed.

`fmbench calibrate planted DIR... --reference FILE [--out FILE]` prints the table (and writes it), so the table in
docs/gate.md is rebuilt from the committed folders, never typed.
"""

from __future__ import annotations

from pathlib import Path

from tabulate import tabulate

from fmbench import atomic, resultset
from fmbench.gate import RegressError, verdicts
from fmbench.gate.decision import ALL_CELLS
from fmbench.gate.evidence import tuner_of

MARK = "# planted fault"


def fault_of(folder: Path) -> str:
    """What the fault does, from the comment its patch's added line carries ("# planted fault: ...")."""
    patches = sorted(folder.glob("*.patch"))
    if not patches:
        raise RegressError(f"{folder}: no .patch in it; make it with scripts/planted_run.sh NAME")
    for line in patches[0].read_text().splitlines():
        if line.startswith("+") and MARK in line:
            return line.partition(MARK)[2].lstrip(":").strip() or patches[0].stem
    return patches[0].stem


def _column(row_name: str) -> str:
    """The table column of a check row: its tuner ("random epochs12", "random, all budgets": random), or all cells."""
    return row_name if row_name == ALL_CELLS else tuner_of(row_name.split(",")[0])


def judge(folder: Path, reference: dict) -> dict:
    """One fault's row: its deciding tests' differences (points, None where nothing compared) and the failing rows."""
    _, table = verdicts.check(resultset.load(folder), reference)
    failing = verdicts.failing(table)
    moved = {}
    for name, cell, test in table:
        if test.level is None and (cell is None or not cell.failed):
            continue  # shown, not deciding
        moved[_column(name)] = None if test.difference is None else round(test.difference.mean * 100, 2)
    return {"name": folder.name, "fault": fault_of(folder), "failing": failing, "moved": moved}


def render(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(c for row in rows for c in row["moved"] if c != ALL_CELLS)) + [ALL_CELLS]
    lines = []
    for row in rows:
        failed = {_column(name) for name in row["failing"]}
        cells = []
        for column in columns:
            value = row["moved"].get(column)
            text = "-" if value is None else f"{value:+.2f}"
            cells.append(f"**{text}**" if column in failed else text)
        caught = f"caught ({len(failed)} row{'s' * (len(failed) != 1)})" if failed else "passed"
        lines.append([row["name"], row["fault"], caught, *cells])
    headers = ["fault", "what it does", "gate", *(f"{c} (pts)" for c in columns)]
    return tabulate(lines, headers, tablefmt="github", disable_numparse=True)


def command(folders: list[Path], reference: dict, reference_path: Path, out: Path | None) -> int:
    rows = [judge(folder, reference) for folder in folders]
    text = (
        f"Planted faults judged against `{reference_path}` (`fmbench calibrate planted`): each deciding test's "
        "difference from the reference in points, bold where the gate failed it.\n\n" + render(rows) + "\n"
    )
    print(text, end="")
    if out:
        atomic.write_text(out, text)
    return 0
