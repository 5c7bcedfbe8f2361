"""Report sections on ranks, as HPO benchmark papers show them, and on runs that are one piece of evidence."""
from __future__ import annotations

import pandas as pd

from fmbench import ranking
from fmbench.markdown import cell_text, num, table
from fmbench.resultset import ResultSet


def critical_differences(ok: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    """Friedman's test over seeds and Nemenyi's critical difference per budget: which mean ranks differ."""
    rows = []
    for budget in sorted(set(ok["budget"]) - {"none"}):
        ranks = ranking.seed_ranks(pd.concat([ok[ok["budget"] == budget], base]))
        if ranks.shape[1] < 3 or ranks.shape[0] < 2:
            continue
        cd = ranking.critical_difference(ranks)
        groups = "; ".join(", ".join(group) for group in cd.groups()) or "none"
        rows.append([budget, str(cd.seeds), num(cd.friedman_p, 3) if cd.friedman_p is not None else "unknown: identical ranks",
                     num(cd.critical_difference, 2), groups])
    if not rows:
        return []
    return ["## Critical differences", "",
            "Friedman's test over seeds and Nemenyi's critical difference at 5%: two mean ranks further apart than the critical "
            "difference differ significantly; each group lists runs whose mean ranks lie within it of each other.", "",
            table(rows, ["budget", "seeds", "Friedman p", "critical difference", "not significantly different"]), ""]


def anytime_ranks(runs: pd.DataFrame, trials: pd.DataFrame) -> list[str]:
    """Mean rank of the best validation accuracy so far at quarters of each budget's longest search."""
    rows = []
    for budget in sorted(set(runs["budget"]) - {"none"}):
        done = trials[trials["budget"] == budget]
        longest = float(runs.loc[runs["budget"] == budget, "search_seconds"].max())
        if done["tuner"].nunique() < 2 or not longest > 0:
            continue
        at = [round(longest * q, 1) for q in (0.25, 0.5, 0.75, 1.0)]
        ranks = ranking.anytime_mean_ranks(done, at)
        rows += [[budget, tuner, *(num(ranks.loc[t, tuner], 2) for t in at)] for tuner in ranks.columns]
    if not rows:
        return []
    return ["## Mean rank against search time", "",
            "Within each budget and seed, tuners are ranked by their best validation accuracy so far (a tuner with no finished "
            "trial yet ranks last), at a quarter, half, three quarters and all of the budget's longest search; the mean over seeds.", "",
            table(rows, ["budget", "tuner", "1/4", "1/2", "3/4", "end"]), ""]


def shared_models(rs: ResultSet) -> list[str]:
    shared = rs.shared_models()
    lines = ["## Same model, several cells", ""]
    if not shared:
        return lines + ["Every finished tuned run retrained a model of its own.", ""]
    rows = [[str(seed), ", ".join(cells), cell_text(hps, 160)] for seed, hps, cells in shared]
    return lines + [f"{len(shared)} model(s) were retrained by several cells of one seed (the tuners share the seed's random "
                    "stream, so small budgets often end on the same model). Their runs are one piece of evidence: `fmbench "
                    "check` counts them once; read per-cell intervals with that in mind.", "",
                    table(rows, ["seed", "cells", "best hyperparameters"]), ""]
