"""Stored results -> a markdown report (tabulate) with PNG plots beside it. Reads rows only; never trains.

Over 300 lines because it is one document: a short function per section, in the order the report shows them,
and render() that joins them; the paired comparisons (tuner against the baseline, tuner against tuner), plots,
ranks and table helpers live in their own modules.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from fmbench import atomic, resultset, stats
from fmbench.registry import BASELINE
from fmbench.report import comparisons, evidence, plots, proposals, ranks
from fmbench.report.tables import cell_text, num, table
from fmbench.resultset import ResultSet, cell_order, cell_rows

TIMESTAMP_PREFIX = "Generated at "

# ---------------------------------------------------------------- formatting


def _mean(values) -> float:
    values = [float(v) for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def _values(runs: pd.DataFrame, column: str) -> str:
    values = sorted({_plain(v) for v in runs[column]})
    return "; ".join(values) if values else "–"


def _plain(value) -> str:
    if isinstance(value, float):
        return "all" if math.isnan(value) else f"{value:g}"
    return str(value) or "–"


# ---------------------------------------------------------------- sections


def _machine(run) -> str:
    return f"{run.cpu_model} ({_plain(run.cpu_cores)} cores), GPU: {run.gpu_model}"


def _libraries(run) -> str:
    return (
        f"tensorflow {run.tensorflow_version}, jax {run.jax_version}, keras {run.keras_version}, "
        f"keras-tuner {run.keras_tuner_version}, python {run.python_version}"
    )


def _header(runs: pd.DataFrame, trials: pd.DataFrame, generated_at: str) -> list[str]:
    sizes = sorted(
        {f"{_plain(r.train_size)} / {_plain(r.val_size)} / {_plain(r.test_size)}" for r in runs.itertuples()}
    )
    lines = [
        f"# fmbench report: {_values(runs, 'profile')}",
        "",
        f"{TIMESTAMP_PREFIX}{generated_at} from {len(runs)} runs and {len(trials)} trials.",
        "",
        f"- Budgets: {'; '.join(sorted(set(runs['budget']) - {'none'})) or '–'}",
        f"- Data sizes (train / val / test images): {'; '.join(sizes)}",
        f"- Epochs per trial and retrain: {_values(runs, 'epochs')}; batch size: {_values(runs, 'batch_size')}",
        f"- Seeds: {', '.join(str(int(s)) for s in sorted(set(runs['seed'])))}",
        f"- Machine: {'; '.join(sorted({_machine(r) for r in runs.itertuples()}))}",
        f"- Keras backend: {_values(runs, 'keras_backend')}",
        f"- Libraries: {'; '.join(sorted({_libraries(r) for r in runs.itertuples()}))}",
        f"- Commit(s): {_commits(runs)}",
        *_unreproducible(runs),
    ]
    return lines


NO_COMMIT = "unknown"  # what fmbench.results records where the code was not a git checkout
DIRTY = "-dirty"  # fmbench.results' mark of a checkout whose code had uncommitted changes


def _commits(runs: pd.DataFrame) -> str:
    counts = runs["commit"].map(_plain).value_counts()
    return "; ".join(f"{commit} ({_runs(counts[commit])})" for commit in sorted(counts.index)) or "–"


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def _unreproducible(runs: pd.DataFrame) -> list[str]:
    """A flag per commit no checkout can reproduce: the rows ran on code that differs from every commit."""
    counts = runs["commit"].map(_plain).value_counts()
    flags = []
    for commit in sorted(counts.index):
        if commit.endswith(DIRTY):
            why = "uncommitted changes: not reproducible from a commit"
        elif commit in (NO_COMMIT, "–"):
            why = "no commit recorded: not reproducible from a commit"
        else:
            continue
        flags.append(f"- ⚠ {commit} ({counts[commit]} of {len(runs)} runs): {why}")
    return flags


def _cost(runs: pd.DataFrame) -> list[str]:
    rows = []
    for tuner, budget in cell_order(zip(runs["tuner"], runs["budget"])):
        group = cell_rows(runs, tuner, budget)
        ok = group[~group["failed"]]
        stopped = group["stopped_by"].value_counts()
        gpu_mean, gpu_max, gpu_mem = _mean(ok["gpu_util_mean"]), ok["gpu_util_max"].max(), ok["gpu_mem_peak_mb"].max()
        gpu = (
            ("no GPU", "no GPU")
            if all(math.isnan(v) for v in (gpu_mean, gpu_max, gpu_mem))
            else (f"{num(gpu_mean, 0)} / {num(gpu_max, 0)}", num(gpu_mem, 0))
        )
        rows.append(
            [
                tuner,
                budget,
                " / ".join(num(_mean(ok[c]), 1) for c in ("search_seconds", "retrain_seconds", "evaluate_seconds")),
                f"{num(_mean(ok['trials_completed']), 1)} ({int(group['trials_failed'].fillna(0).sum())})",
                num(_mean(ok["search_epochs"]), 1),
                ", ".join(f"{name}×{stopped[name]}" for name in sorted(stopped.index)),
                *gpu,
                num(_mean(ok["cpu_util_mean"]), 0),
            ]
        )
    headers = [
        "tuner",
        "budget",
        "wall s: search / retrain / evaluate",
        "trials completed (failed)",
        "search epochs",
        "stopped by",
        "GPU util % mean / max",
        "GPU mem peak MB",
        "CPU util % mean",
    ]
    return [
        "## Cost",
        "",
        table(rows, headers),
        "",
        "Means over finished runs; failed trials are summed over all runs; *stopped by* counts every run. "
        "CPU util is this process, in percent of one core.",
        "",
    ]


def baseline_target(runs: pd.DataFrame) -> float | None:
    base = runs[(runs["tuner"] == BASELINE) & ~runs["failed"]]["best_val_accuracy"].dropna()
    return float(base.mean()) if len(base) else None


def _time_to_baseline(runs: pd.DataFrame, trials: pd.DataFrame, target: float | None) -> list[str]:
    lines = ["## Time and epochs to reach the baseline's validation accuracy", ""]
    if target is None:
        return lines + ["No finished baseline run: there is no target to reach.", ""]
    rows = []
    for tuner, budget in cell_order(zip(runs["tuner"], runs["budget"])):
        if tuner == BASELINE:
            continue
        group = cell_rows(runs, tuner, budget)
        reached = []
        for run_id in group["run_id"]:
            t = trials[trials["run_id"] == run_id]
            hit = stats.reach_target(
                list(t["started_seconds"]), list(t["seconds"]), list(t["epochs"]), list(t["val_accuracy"]), target
            )
            if hit is not None:
                reached.append(hit)
        if reached:
            rows.append(
                [
                    tuner,
                    budget,
                    f"{len(reached)} / {len(group)}",
                    num(float(np.median([r[0] for r in reached])), 1),
                    num(float(np.median([r[1] for r in reached])), 1),
                ]
            )
        else:
            rows.append([tuner, budget, f"0 / {len(group)}", "not reached", "not reached"])
    return lines + [
        f"Target: {target:.4f}, the mean best validation accuracy of the finished baseline runs. Per run, the "
        "first trial (in start order) at or above it; time is search seconds to that trial's end, epochs are "
        "summed over all trials up to and including it. Medians are over the seeds that reached it.",
        "",
        table(rows, ["tuner", "budget", "seeds reached", "median search s", "median epochs"]),
        "",
    ]


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
                rows.append(
                    [budget, tuner, num(float(np.mean(tally[tuner])), 2), str(wins[tuner]), str(len(tally[tuner]))]
                )
    return [
        "## Ranking across seeds",
        "",
        "Within each budget and seed, finished runs (baseline included) are ranked by test accuracy, 1 = best, "
        "ties share the average rank; a win is a seed where the run has the top accuracy (ties all win). "
        "Failed runs are not ranked.",
        "",
        table(rows, ["budget", "tuner", "mean rank", "wins", "seeds ranked"])
        if rows
        else "Nothing to rank: fewer than two finished runs per seed.",
        "",
        *ranks.critical_differences(ok, base),
    ]


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
                [tuner, budget, str(int(run.seed)), "(failed run) " * bool(run.failed) + cell_text(text or "–")]
            )
    return ["## Best hyperparameters found", "", table(rows, ["tuner", "budget", "seed", "hyperparameters"]), ""]


def _failures(runs: pd.DataFrame, trials: pd.DataFrame, superseded: pd.DataFrame) -> list[str]:
    lines = ["## ⚠ Failed runs and trials", ""]
    bad = runs[runs["failed"]].sort_values(["tuner", "budget", "seed"])
    bad_trials = trials[(trials["status"] == "FAILED") | (trials["error"] != "")].sort_values(
        ["run_id", "started_seconds"]
    )
    if bad.empty and bad_trials.empty and superseded.empty:
        return lines + ["None: every run and trial finished.", ""]
    if not bad.empty:
        lines += [
            f"{len(bad)} failed run(s): counted in *seeds total*, left out of means, intervals, paired "
            "differences and ranks.",
            "",
            table(
                [
                    [r.tuner, r.budget, str(int(r.seed)), r.run_id, r.stopped_by, cell_text(r.error or "–")]
                    for r in bad.itertuples()
                ],
                ["tuner", "budget", "seed", "run_id", "stopped by", "error"],
            ),
            "",
        ]
    if not bad_trials.empty:
        lines += [
            f"{len(bad_trials)} failed trial(s):",
            "",
            table(
                [
                    [r.tuner, r.budget, _plain(r.seed), r.run_id, r.trial_id, r.status, cell_text(r.error or "–")]
                    for r in bad_trials.itertuples()
                ],
                ["tuner", "budget", "seed", "run_id", "trial", "status", "error"],
            ),
            "",
        ]
    if not superseded.empty:
        lines += [
            f"{len(superseded)} run(s) superseded by a later run of the same tuner, budget and seed (left out "
            "of every number):",
            "",
            table(
                [
                    [r.tuner, r.budget, _plain(r.seed), r.run_id, r.stopped_by, cell_text(r.error or "–")]
                    for r in superseded.itertuples()
                ],
                ["tuner", "budget", "seed", "run_id", "stopped by", "error"],
            ),
            "",
        ]
    return lines


def _no_promotion(runs: pd.DataFrame) -> list[str]:
    """Hyperband runs that finished no bracket: under their label ran a 1-epoch random search."""
    bare = runs[pd.to_numeric(runs["brackets_completed"], errors="coerce") == 0]
    if bare.empty:
        return []
    return [
        "## ⚠ Hyperband runs without a promotion",
        "",
        f"{len(bare)} Hyperband run(s) completed no bracket (the deadline came first on this machine): their rows are "
        "a 1-epoch random search, not Hyperband.",
        "",
        table([[r.budget, str(int(r.seed)), r.run_id] for r in bare.itertuples()], ["budget", "seed", "run_id"]),
        "",
    ]


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
    lines = _header(runs, known, generated_at) + [""]
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
        + _cost(runs)
        + _time_to_baseline(runs, known, baseline_target(runs))
        + _ranking(runs)
    )
    lines += ranks.anytime_ranks(runs, known) + evidence.distinct_models(rs) + evidence.model_proposals(rs)
    lines += proposals.section(rs)
    if figures:
        lines += ["## Plots", ""] + [f"![{title}]({name})\n" for title, name in figures]
    lines += _hyperparameters(runs) + _failures(runs, known, rs.superseded) + _no_promotion(runs) + [HOW_TO_READ]
    return "\n".join(lines)


def write_report(results_dirs, out: Path | None = None) -> Path:
    """Read one or several results folders, write the markdown report (default: in the first folder, report.md)
    and its PNGs beside it; return its path."""
    rs = resultset.load(results_dirs)
    out = Path(out) if out is not None else rs.sources[0] / "report.md"
    figures = plots.write_all(rs, baseline_target(rs.runs), out.parent, out.stem)
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
