"""Report sections on what the rows are evidence of: how many distinct models they retrained, how often two
tuners of one seed ended on the same model, and whether a model-based tuner's model proposed its trials."""

from __future__ import annotations

import itertools

import pandas as pd

from fmbench.registry import BASELINE, RUNNERS
from fmbench.report.tables import cell_text, num, table
from fmbench.resultset import ResultSet, cell_order, cell_rows


def distinct_models(rs: ResultSet) -> list[str]:
    """Distinct configurations over tuned runs, the share of rows no other tuner of their seed shares, and for
    each pair of tuners the share of (budget, seed) where both ended on the same model."""
    ok = rs.ok[rs.ok["tuner"] != BASELINE]
    if ok.empty:
        return []
    own = []  # per run: no other tuner of its seed, in any budget, ended on its configuration
    for run in ok.itertuples():
        others = ok[(ok["seed"] == run.seed) & (ok["tuner"] != run.tuner)]
        own.append(run.best_hyperparameters not in set(others["best_hyperparameters"]))
    pairs = []
    for a, b in itertools.combinations(sorted(set(ok["tuner"]), key=list(RUNNERS).index), 2):
        both = ok[ok["tuner"] == a].merge(ok[ok["tuner"] == b], on=["budget", "seed"], suffixes=("_a", "_b"))
        if len(both):
            same = (both["best_hyperparameters_a"] == both["best_hyperparameters_b"]).mean()
            pairs.append([a, b, str(len(both)), f"{same:.0%}"])
    shared = rs.shared_models()
    lines = [
        "## Distinct models",
        "",
        f"{len(ok)} finished tuned runs retrained {ok['best_hyperparameters'].nunique()} distinct configurations; "
        f"{sum(own) / len(own):.0%} of them ended on a configuration no other tuner of the same seed ended on (in "
        "any budget). Runs that retrained one configuration are one piece of evidence (`fmbench check` counts "
        "them once); read per-cell intervals with that in mind.",
        "",
        table(pairs, ["tuner A", "tuner B", "budget x seed pairs", "same final model"]),
        "",
    ]
    if shared:
        rows = [[", ".join(runs), cell_text(hps, 160)] for hps, runs in shared]
        lines += [table(rows, ["runs that retrained the same configuration", "best hyperparameters"]), ""]
    return lines


def model_proposals(runs: pd.DataFrame) -> list[str]:
    """For each model-based cell: the share of completed trials its model proposed; a cell is labelled
    honestly only where every run's model proposed at least half."""
    model_based = [c for c in cell_order(zip(runs["tuner"], runs["budget"])) if RUNNERS[c[0]].model_based]
    rows, short = [], []
    for tuner, budget in model_based:
        group = cell_rows(runs, tuner, budget)
        share = pd.to_numeric(group["model_trials"], errors="coerce") / group["trials_completed"].where(
            group["trials_completed"] > 0
        )
        if share.isna().all():
            continue  # rows written before proposals were recorded
        low = group[share < 0.5]
        short += [
            [tuner, budget, str(int(r.seed)), f"{int(r.model_trials)} of {int(r.trials_completed)}"]
            for r in low.itertuples()
        ]
        rows.append([tuner, budget, num(share.mean(), 2), num(share.min(), 2), f"{len(low)} / {len(group)}"])
    if not rows:
        return []
    lines = [
        "## Trials the model proposed",
        "",
        "Model-based tuners start with random trials (half the full-length trials their budget allows, or 3 under "
        "a time budget) before their model proposes. A row is that tuner's only where its model proposed at least "
        "half of the completed trials.",
        "",
        table(rows, ["tuner", "budget", "mean share by the model", "lowest", "runs under half"]),
        "",
    ]
    if short:
        lines += [
            f"⚠ In {len(short)} run(s) the model proposed under half of the completed trials: those rows are "
            "mostly random search.",
            "",
            table(short, ["tuner", "budget", "seed", "model-proposed trials"]),
            "",
        ]
    return lines
