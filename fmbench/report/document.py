"""Stored results -> a markdown report (tabulate) with PNG plots beside it. Reads rows only; never trains.

render() joins the sections in the order the report shows them. The ranking across seeds and the best
hyperparameters are built here; the header, cost, failures, paired comparisons, plots, ranks and table helpers live
in their own modules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from fmbench import atomic, resultset, stats
from fmbench.registry import BASELINE
from fmbench.report import comparisons, cost, evidence, failures, plots, proposals, provenance, ranks
from fmbench.report.records import record_table
from fmbench.report.tables import cell_text, num
from fmbench.resultset import ResultSet, cell_order, cell_rows


class RankRow(NamedTuple):
    budget: str
    tuner: str
    mean_rank: str
    wins: str
    seeds_ranked: str


RANK_HEADER = RankRow("budget", "tuner", "mean rank", "wins", "seeds ranked")


def _ranking(runs: pd.DataFrame) -> list[str]:
    ok = runs[~runs["failed"]]
    base = ok[ok["tuner"] == BASELINE]
    rows = []
    for budget in sorted(set(runs["budget"]) - {"none"}) or ["none"]:
        tally: dict[str, list[float]] = {}
        wins: dict[str, int] = {}
        for seed in sorted(set(runs["seed"])):
            here = pd.concat(
                [ok[(ok["budget"] == budget) & (ok["seed"] == seed)], base[base["seed"] == seed]]
            ).drop_duplicates("run_id")
            accuracy = dict(zip(here["tuner"], here["test_accuracy"]))
            if len(accuracy) < 2:
                continue
            best = max(accuracy.values())
            for name, rank in stats.rank_descending(accuracy).items():
                tally.setdefault(name, []).append(rank)
                wins[name] = wins.get(name, 0) + (accuracy[name] == best)
        for tuner, _ in cell_order(zip(*[runs[runs["budget"].isin([budget, "none"])][c] for c in ("tuner", "budget")])):
            if tuner in tally:
                mean_rank = num(float(np.mean(tally[tuner])), 2)
                rows.append(
                    RankRow(budget, tuner, mean_rank, wins=str(wins[tuner]), seeds_ranked=str(len(tally[tuner])))
                )
    return [
        "## Ranking across seeds",
        "",
        "Within each budget and seed, finished runs (baseline included) are ranked by test accuracy, 1 = best, "
        "ties share the average rank; a win is a seed where the run has the top accuracy (ties all win). "
        "Failed runs are not ranked.",
        "",
        record_table(rows, RANK_HEADER) if rows else "Nothing to rank: fewer than two finished runs per seed.",
        "",
        *ranks.critical_differences(ok, base),
    ]


class BestRow(NamedTuple):
    tuner: str
    budget: str
    seed: str
    hyperparameters: str


BEST_HEADER = BestRow("tuner", "budget", "seed", "hyperparameters")


def _hyperparameters(runs: pd.DataFrame) -> list[str]:
    rows = []
    for tuner, budget in cell_order(zip(runs["tuner"], runs["budget"])):
        group = cell_rows(runs, tuner, budget)
        for run in group.itertuples():
            hps = json.loads(run.best_hyperparameters or "{}")
            text = ", ".join(
                f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                for k, v in sorted(hps.items())
                if not k.startswith("tuner/")
            )
            rows.append(
                BestRow(tuner, budget, str(int(run.seed)), "(failed run) " * bool(run.failed) + cell_text(text or "–"))
            )
    return ["## Best hyperparameters found", "", record_table(rows, BEST_HEADER), ""]


HOW_TO_READ = (
    "## How to read this\n\n"
    "Each tuner searched under the stated budget on the same data and seeds as the hand-picked baseline, then its best "
    "hyperparameters were retrained from scratch and the test set was evaluated once. A tuner helps if Δ vs "
    "baseline is "
    "positive and its 95% interval excludes 0; with few seeds a wide interval that includes 0 means *not "
    "shown*, not *no "
    "effect*. Read accuracy together with the cost table and the time to reach the baseline: a small gain "
    "that costs many "
    "times the baseline's wall time may not be worth it. All numbers are computed from the stored rows in "
    "runs.csv and trials.csv.\n"
)


def render(
    rs: ResultSet, figures: list[tuple[str, str]] = (), generated_at: str | None = None, notes: list[str] = ()
) -> str:
    """The report as markdown; pure: the same rows (and generated_at) give the same text."""
    runs, known = rs.runs, rs.trials
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = provenance.header(runs, known, generated_at) + [""]
    lines += [f"> {note}" for note in notes]
    if rs.orphan_trials:
        lines += [
            f"> {rs.orphan_trials} trial row(s) belong to no counted run (a run still in progress, or "
            "superseded) and are left out.",
            "",
        ]
    lines += (
        comparisons.accuracy_section(runs)
        + comparisons.pairs_section(runs)
        + cost.cost_section(runs)
        + cost.time_to_baseline_section(runs, known, cost.baseline_target(runs))
        + _ranking(runs)
    )
    lines += ranks.anytime_ranks(runs, known) + evidence.distinct_models(rs) + evidence.model_proposals(rs)
    lines += proposals.section(rs)
    if figures:
        lines += ["## Plots", ""] + [f"![{title}]({name})\n" for title, name in figures]
    lines += _hyperparameters(runs) + failures.failures_section(runs, known, rs.superseded)
    lines += failures.no_promotion_section(runs) + [HOW_TO_READ]
    return "\n".join(lines)


def write_report(results_dirs, out: Path | None = None) -> Path:
    """Read one or several results folders, write the markdown report (default: in the first folder, report.md)
    and its PNGs beside it; return its path."""
    rs = resultset.load(results_dirs)
    out = Path(out) if out is not None else rs.sources[0] / "report.md"
    figures = plots.write_all(rs, cost.baseline_target(rs.runs), out.parent, out.stem)
    atomic.write_text(out, render(rs, figures))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results_dirs",
        type=Path,
        nargs="+",
        metavar="RESULTS_DIR",
        help="results folder(s) holding runs.csv and trials.csv, e.g. results/quick, or every shard folder of "
        "one matrix",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="markdown file to write (default: the first RESULTS_DIR/report.md); PNGs go beside it",
    )


def command(args: argparse.Namespace) -> int:
    path = write_report(args.results_dirs, args.out)
    print(path)
    return 0
