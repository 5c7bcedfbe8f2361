"""`fmbench check`: stored results (one or several folders) vs a stored reference; exit codes; CI output.

The decision is decision.py's: every cell's evidence, counted once, one family of one-sided paired t-tests
(one per tuner over its cells, and over all cells) under Holm's correction at 5%. A failed run, a missing cell or
seed, or a rejected test exits 1. Speed (how much work a time limit bought) is reported beside it, never as a drop.
The table's rows and their verdicts are verdicts.py's, which the calibration judges real runs with too; this
module renders them and runs the command; a library caller imports verdicts.py, not this module.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from tabulate import tabulate

from fmbench import atomic, resultset
from fmbench.gate import RegressError, decision, evidence, noise
from fmbench.gate import reference as ref_io
from fmbench.gate.verdicts import check, failing, message, verdict
from fmbench.resultset import ResultSet
from fmbench.spec import format_seeds, parse_seeds
from fmbench.stats import mean_interval

FOOTNOTE = (
    "Each cell and seed that both sides ran is one unit of evidence: its test accuracy (measure *test*), or for a "
    "time-limited cell that did other work than the reference (another machine speed), the best validation accuracy "
    "over the trials both runs share from the start (measure *val*). Units that retrain the same model are counted "
    "once (*dup* left out). Each row is a one-sided paired t-test for a drop over seeds, each seed counted once as the "
    "mean of its units (a seed's cells share its random streams, so they move together). The deciding rows are one "
    "per tuner (its one cell's row, or its own row over all its budgets) and all cells; Holm's correction over them "
    "holds the chance of any false alarm at 5%: a row fails when p <= its Holm level. A cell of a tuner with several "
    "cells shows its p but is judged within its tuner's row (*in pooled*). Detectable: the smallest true drop the "
    "row catches with 80% power at Holm's first level (5% / deciding rows: a drop confined to one row has the "
    "family's smallest p), from the spread it takes. Accuracies count images: a test takes its spread as at least "
    "one image of the evaluated set, and as at least the spread harmless runs measured for it (the reference's "
    "repeats, or `--noise`; *spread floored*): a few seeds cannot estimate their own spread, so differences that "
    "happen to agree are no evidence. "
    "Work: mean trials completed in the time limit, reference -> now; a slower machine shows here, not as a drop."
)


def _pts(value: float | None, sign: bool = False) -> str | None:
    return None if value is None else f"{value * 100:{'+' if sign else ''}.2f}"


def _detectable(test: decision.Test) -> str | None:
    if test.difference is None:
        return "no units"
    if test.first_level is None:
        return None
    if test.detectable is None:
        return f"unknown: {test.difference.unknown}"
    return _pts(test.detectable) + (" (spread floored)" if test.difference.floored else "")


def _seeds(cell: evidence.Cell) -> str:
    """The seeds judged, and any not judged: failed, missing, beyond the reference's (or its --seeds) or unmatched."""
    judged = set(cell.current_seeds) & set(cell.reference_seeds) if cell.reference_seeds else set(cell.current_seeds)
    text = format_seeds(judged) or "-"
    notes = [f"failed: {format_seeds(s for s, _ in cell.failed)}"] * bool(cell.failed)
    notes += [f"missing: {format_seeds(cell.missing)}"] * bool(cell.missing)
    beyond = set(cell.current_seeds) - judged
    notes += [f"not in the reference: {format_seeds(beyond)}"] * bool(beyond)
    notes += [f"no work in common: {format_seeds(cell.unmatched)}"] * bool(cell.unmatched)
    return text + (f" ({'; '.join(notes)})" if notes else "")


def render_table(table) -> str:
    lines = []
    for name, cell, test in table:
        d = test.difference
        ref = mean_interval([u.reference for u in test.units]).mean if test.units else None
        cur = mean_interval([u.current for u in test.units]).mean if test.units else None
        work = (
            None
            if cell is None or cell.work is None
            else f"{cell.work[0]:.1f} -> {cell.work[1]:.1f} ({cell.work[1] / cell.work[0]:.2f}x)"
        )
        lines.append(
            [
                name,
                "pooled" if cell is None else _seeds(cell),
                "+".join(test.measures) or None,
                f"{len(test.units)} (dup {test.duplicates})",
                None if ref is None else f"{ref:.4f}",
                None if cur is None else f"{cur:.4f}",
                _pts(d.mean if d else None, sign=True),
                _detectable(test),
                f"{test.p:.3g}",
                None if test.level is None else f"{test.level:.3g}",
                work,
                verdict(cell, test),
            ]
        )
    headers = [
        "cell",
        "seeds",
        "measure",
        "units",
        "reference",
        "current",
        "difference (pts)",
        "detectable drop at Holm's first level (pts)",
        "p (drop)",
        "Holm level",
        "work",
        "verdict",
    ]
    return tabulate(lines, headers, tablefmt="github", missingval="-", disable_numparse=True)


def render_report(table, warnings: list[str]) -> str:
    """Warnings, the table, the footnote and the verdict, as markdown (also fine on a terminal)."""
    lines = [f"> **warning:** {w}" for w in warnings]
    lines += ([""] if warnings else []) + [render_table(table), "", FOOTNOTE, ""]
    bad = failing(table)
    lines += [f"- {message(name, cell, test)}" for name, cell, test in table if name in bad]
    slower = [
        f"{name} {cell.work[1] / cell.work[0]:.2f}x"
        for name, cell, _ in table
        if cell is not None and cell.work and cell.work[0] and cell.work[1] < cell.work[0]
    ]
    if slower:
        lines += [
            "",
            f"Speed: time-limited cells completed fewer trials than the reference ({', '.join(slower)}): "
            "a slower machine or a slower change; not an accuracy drop.",
        ]
    verdict_text = (
        f"Verdict: REGRESSION in {len(bad)} of {len(table)} rows: {', '.join(bad)}"
        if bad
        else f"Verdict: ok, no regression in {len(table)} rows"
    )
    return "\n".join(lines + ([""] if bad or slower else []) + [f"**{verdict_text}**"])


def _escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


def annotations(table, warnings: list[str]) -> list[str]:
    """GitHub Actions workflow commands: one ::error per failing row, one ::warning per warning."""
    lines = [f"::warning title=fmbench check::{_escape(w)}" for w in warnings]
    bad = failing(table)
    lines += [
        f"::error title={_escape('Accuracy regression: ' + name, True)}::{_escape(message(name, cell, test))}"
        for name, cell, test in table
        if name in bad
    ]
    return lines


def export_benchmark_json(rs: ResultSet, path: Path) -> list[dict]:
    """github-action-benchmark `customBiggerIsBetter` entries: mean test accuracy (%) per cell, failed runs left out."""
    entries = []
    for tuner, budget in rs.cells():
        ok = rs.cell_runs(tuner, budget)
        ok = ok[~ok.failed]
        if ok.empty:
            continue
        summary = mean_interval(ok["test_accuracy"])
        entries.append(
            {
                "name": f"{evidence.cell_name(tuner, budget)} test accuracy",
                "unit": "%",
                "value": round(summary.mean * 100, 4),
                "range": f"± {summary.std * 100:.4f}",
                "extra": f"seeds: {', '.join(str(int(s)) for s in ok['seed'])}; n={summary.n}",
            }
        )
    atomic.write_text(Path(path), json.dumps(entries, indent=2) + "\n")
    return entries


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results",
        type=Path,
        nargs="+",
        metavar="RESULTS_DIR",
        help="results folder(s) holding runs.csv, e.g. results/smoke, or every shard folder of one matrix",
    )
    parser.add_argument(
        "--reference", type=Path, required=True, help="the reference JSON, e.g. results/reference/smoke.json"
    )
    parser.add_argument(
        "--update-reference", action="store_true", help="write the reference from these results and exit 0"
    )
    parser.add_argument(
        "--noise",
        type=Path,
        metavar="FILE",
        help="a noise model measured against this reference (e.g. results/noise/smoke.json; default: the noise "
        "the reference's own repeats measured, if any): no test takes a "
        "spread below what harmless runs showed",
    )
    parser.add_argument("--seeds", metavar="LIST", help=ref_io.SEEDS_HELP)
    parser.add_argument(
        "--export-json",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write github-action-benchmark customBiggerIsBetter JSON to FILE",
    )


def command(args: argparse.Namespace) -> int:
    """Exit 1 on a regression, a failed run or a missing cell, 0 otherwise.

    Bad input raises RegressError (or ResultsError)."""
    rs = resultset.load(args.results)
    if args.update_reference:
        ref_io.write(args.reference, ref_io.build(rs))
        print(f"wrote reference {args.reference} from {rs.describe()}")
        return 0
    if args.seeds and args.update_reference:
        raise RegressError("--seeds judges a subset of the reference's seeds; drop it to write a reference")
    reference = ref_io.load(args.reference)
    if args.seeds:
        reference = ref_io.restrict(reference, parse_seeds(args.seeds, "--seeds"))
    floors = None
    if args.noise:
        floors = noise.floors_for(noise.load(args.noise), reference, args.noise)
    warnings, table = check(rs, reference, floors)
    if args.export_json:  # only once the check could judge: a run it refused exports nothing
        export_benchmark_json(rs, args.export_json)
    report = render_report(table, warnings)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("\n".join(annotations(table, warnings)))
    print(report)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(f"## fmbench check: {rs.describe()} vs {args.reference}\n\n{report}\n\n")
    return 1 if failing(table) else 0
