"""Report sections on what the rows are evidence of: how many distinct models they retrained, how often two
tuners of one seed ended on the same model, and whether a model-based tuner's model proposed its trials."""

from __future__ import annotations

import itertools
import json

import pandas as pd

from fmbench.registry import BASELINE, RUNNERS
from fmbench.report.tables import cell_text, num, table
from fmbench.resultset import ResultSet


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
    random_repeats, model_repeats = _trials_across_seeds(rs.trials)
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
        f"Trial configurations a tuner tried in several seeds: {random_repeats} drawn at random (seeds whose "
        f"random streams overlap would show here), {model_repeats} proposed by a model (a model can land on "
        "the same point, often a corner of the space, from different seeds).",
        "",
    ]
    if shared:
        rows = [[", ".join(runs), cell_text(hps, 160)] for hps, runs in shared]
        lines += [table(rows, ["runs that retrained the same configuration", "best hyperparameters"]), ""]
    return lines


def model_proposals(rs: ResultSet) -> list[str]:
    """For each model-based cell: the share of its judged trials (completed or pruned) that its model proposed,
    read from the trials' own record; a row is that tuner's only where every run's model proposed at least half."""
    model_based = [c for c in rs.cells() if RUNNERS[c[0]].model_based]
    rows, short = [], []
    for tuner, budget in model_based:
        shares = []
        for run in rs.cell_runs(tuner, budget).itertuples():
            trials = rs.run_trials(run.run_id)
            judged = trials[trials["status"].isin(["COMPLETED", "PRUNED"])]
            if judged.empty or (judged["proposed_by"] == "").all():
                continue  # no trial to judge, or rows written before proposals were recorded
            by_model = int((judged["proposed_by"] == "model").sum())
            shares.append(by_model / len(judged))
            if by_model < len(judged) / 2:
                short.append([tuner, budget, str(int(run.seed)), f"{by_model} of {len(judged)}"])
        if shares:
            low = sum(share < 0.5 for share in shares)
            rows.append(
                [tuner, budget, num(sum(shares) / len(shares), 2), num(min(shares), 2), f"{low} / {len(shares)}"]
            )
    if not rows:
        return []
    lines = [
        "## Trials the model proposed",
        "",
        "Model-based tuners start with random trials (half the full-length trials their budget allows, or 3 under "
        "a time budget) before their model proposes. Shares are of the trials that ran to a score (completed, or "
        "stopped by a pruner); a row is that tuner's only where its model proposed at least half of them.",
        "",
        table(rows, ["tuner", "budget", "mean share by the model", "lowest", "runs under half"]),
        "",
    ]
    if short:
        lines += [
            f"⚠ In {len(short)} run(s) the model proposed under half of the trials: those rows are "
            "mostly random search.",
            "",
            table(short, ["tuner", "budget", "seed", "trials the model proposed"]),
            "",
        ]
    return lines


def _trials_across_seeds(trials: pd.DataFrame) -> tuple[int, int]:
    """(random, model): configurations a tuner tried in several seeds, by who proposed every such trial
    (a configuration any of whose trials came from a model counts as the model's)."""
    if trials.empty:
        return 0, 0
    tried = trials.assign(
        config=trials["hyperparameters"].map(lambda text: json.dumps(json.loads(text), sort_keys=True))
    )
    random = model = 0
    for _, group in tried.groupby(["tuner", "config"]):
        if group["seed"].nunique() > 1:
            if (group["proposed_by"] == "model").any():
                model += 1
            else:
                random += 1
    return random, model
