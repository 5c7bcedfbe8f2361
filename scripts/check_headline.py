"""Check README's headline table against the report rebuilt from a results folder's rows.

    python scripts/check_headline.py [RESULTS_DIR] [--readme FILE]

RESULTS_DIR (default results/standard-fresh, the headline's run) is read through fmbench's validating results
loader, and its figures come from the report's own code: the accuracy rows of `fmbench report`
(fmbench/report/comparisons.py: means, paired differences, Holm's correction) and its table of epochs and seconds to
the baseline's validation accuracy. The first table of the README (default README.md) is rebuilt column by column
from them, in the README's units (Δ and its interval in points, p (Holm) to two significant digits, medians to whole
epochs and seconds), and compared cell by cell. Exit 0 when they match; 1 with a unified diff (README's table
against the recomputed one) when they differ; 2 with one line on bad arguments, unreadable results, or a README
table with a column this script cannot recompute. Only the table is checked, not the figures quoted in the prose
around it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fmbench import resultset  # noqa: E402 - after sys.path holds the checkout
from fmbench.registry import BASELINE  # noqa: E402
from fmbench.report import comparisons, document  # noqa: E402
from fmbench.report.tables import num  # noqa: E402
from fmbench.results import ResultsError  # noqa: E402

DASH = "–"  # the report's and README's empty cell
Reach = dict[tuple[str, str], tuple[str, str]]  # (tuner, budget) -> (median epochs, median search s), as reported


class HeadlineError(Exception):
    """Input the check cannot judge: the message is the one line printed before exit 2."""


# ---------------------------------------------------------------- README's columns, from the report's figures


def _points(value: float) -> str:
    return f"{100 * value:+.2f}"


def _delta(row: comparisons.AccuracyRow) -> str:
    if row.versus is None:
        return DASH
    return _points(row.versus.diff.mean)


def _delta_ci(row: comparisons.AccuracyRow) -> str:
    if row.versus is None:
        return DASH
    d = row.versus.diff
    return f"unknown: {d.unknown}" if d.low is None else f"[{_points(d.low)}, {_points(d.high)}]"


def _holm(row: comparisons.AccuracyRow) -> str:
    if row.versus is None:
        return DASH
    adjusted = row.versus.adjusted
    return f"unknown: {row.versus.diff.unknown}" if adjusted is None else f"{adjusted:.2g}"


def _accuracy(row: comparisons.AccuracyRow) -> str:
    return DASH if row.accuracy is None else f"{num(row.accuracy.mean)} ± {num(row.accuracy.std)}"


def _reach(row: comparisons.AccuracyRow, reach: Reach) -> str:
    if row.tuner == BASELINE:
        return DASH
    epochs, seconds = reach.get((row.tuner, row.budget), (DASH, DASH))
    try:
        return f"{float(epochs):.0f} / {float(seconds):.0f} s"
    except ValueError:  # "not reached", or "–" where no baseline run finished to set the target
        return epochs


Column = Callable[[comparisons.AccuracyRow, Reach], str]
COLUMNS: dict[str, Column] = {
    "tuner": lambda row, reach: row.tuner,
    "budget": lambda row, reach: row.budget,
    "test accuracy": lambda row, reach: _accuracy(row),
    "Δ vs baseline (points)": lambda row, reach: _delta(row),
    "Δ 95% CI": lambda row, reach: _delta_ci(row),
    "p (Holm)": lambda row, reach: _holm(row),
    "epochs / seconds to the baseline's val accuracy": _reach,
}


# ---------------------------------------------------------------- markdown tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _is_rule(cells: list[str]) -> bool:
    return all(cell and set(cell) <= set("-: ") for cell in cells)


def tables(text: str) -> list[list[list[str]]]:
    """Every markdown table outside code fences, as rows of cells, header first, without the |---| rule."""
    found: list[list[list[str]]] = []
    current: list[list[str]] = []
    fenced = False
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.lstrip().startswith("|"):
            cells = _cells(line)
            if not _is_rule(cells):
                current.append(cells)
        elif current:
            found.append(current)
            current = []
    return found


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _render(rows: list[list[str]]) -> list[str]:
    """README's own table style: one space around each cell, a |---| rule under the header."""
    return [_line(rows[0]), "|" + "---|" * len(rows[0])] + [_line(r) for r in rows[1:]]


# ---------------------------------------------------------------- the check


def _reach_table(report: str) -> Reach:
    """The report's "time and epochs to reach the baseline" table, found by its column names."""
    for table in tables(report):
        header = table[0]
        if {"tuner", "budget", "median epochs", "median search s"} <= set(header):
            at = {name: i for i, name in enumerate(header)}
            return {
                (r[at["tuner"]], r[at["budget"]]): (r[at["median epochs"]], r[at["median search s"]]) for r in table[1:]
            }
    return {}  # no finished baseline run: nothing to reach, every tuned row shows "–"


def recompute(results_dir: Path, header: list[str]) -> list[list[str]]:
    """The headline table with README's columns, rebuilt from the folder's rows by the report's code."""
    unknown = [name for name in header if name not in COLUMNS]
    if unknown:
        raise HeadlineError(
            f"README's headline table has column(s) this script cannot recompute: {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(map(repr, COLUMNS))}); teach scripts/check_headline.py COLUMNS"
        )
    rs = resultset.load([results_dir])
    rows = comparisons.accuracy_rows(rs.runs)
    budgets = {r.budget for r in rows if r.tuner != BASELINE}
    if "budget" not in header and len(budgets) > 1:
        raise HeadlineError(
            f"{results_dir} holds {len(budgets)} budgets ({', '.join(sorted(budgets))}) but README's headline table "
            "has no budget column: add one, or point the check at a folder of one budget"
        )
    # generated_at fixed: the report's text is then a pure function of the rows.
    reach = _reach_table(document.render(rs, generated_at="-"))
    return [header] + [[COLUMNS[name](row, reach) for name in header] for row in rows]


def check(results_dir: Path, readme: Path) -> tuple[bool, str]:
    """(whether README's first table matches the recomputed one, the unified diff when it does not)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError as exc:
        raise HeadlineError(f"cannot read {readme}: {exc.strerror or exc}") from exc
    found = tables(text)
    if not found:
        raise HeadlineError(f"{readme} has no markdown table: the headline table is its first one")
    written = found[0]
    expected = recompute(results_dir, written[0])
    if written == expected:
        return True, ""
    diff = difflib.unified_diff(
        _render(written),
        _render(expected),
        fromfile=f"{readme} (headline table)",
        tofile=f"recomputed from {results_dir}",
        lineterm="",
    )
    return False, "\n".join(diff)


class _Parser(argparse.ArgumentParser):
    """Bad arguments exit 2 with one line, as fmbench's own commands do."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="check_headline.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "results_dir",
        nargs="?",
        type=Path,
        default=REPO / "results" / "standard-fresh",
        metavar="RESULTS_DIR",
        help="the results folder the headline comes from (default: results/standard-fresh)",
    )
    parser.add_argument(
        "--readme", type=Path, default=REPO / "README.md", metavar="FILE", help="default: the checkout's README.md"
    )
    args = parser.parse_args(argv)
    try:
        same, diff = check(args.results_dir, args.readme)
    except (HeadlineError, ResultsError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    if same:
        print(f"{args.readme}: the headline table matches {args.results_dir}")
        return 0
    print(diff)
    print(f"{parser.prog}: {args.readme}'s headline table differs from {args.results_dir} (above)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
