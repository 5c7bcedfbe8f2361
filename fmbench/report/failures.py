"""The rows that count for less than they seem: failed runs and trials, superseded runs, and Hyperband runs that
finished no bracket."""

from __future__ import annotations

from typing import NamedTuple

import pandas as pd

from fmbench.report.records import plain, record_table
from fmbench.report.tables import cell_text


class LeftOutRunRow(NamedTuple):
    """A run left out of every number: a failed run, or one a later run superseded."""

    tuner: str
    budget: str
    seed: str
    run_id: str
    stopped_by: str
    error: str


LEFT_OUT_RUN_HEADER = LeftOutRunRow("tuner", "budget", "seed", "run_id", "stopped by", "error")


class FailedTrialRow(NamedTuple):
    tuner: str
    budget: str
    seed: str
    run_id: str
    trial: str
    status: str
    error: str


FAILED_TRIAL_HEADER = FailedTrialRow("tuner", "budget", "seed", "run_id", "trial", "status", "error")


class BareHyperbandRow(NamedTuple):
    budget: str
    seed: str
    run_id: str


BARE_HYPERBAND_HEADER = BareHyperbandRow("budget", "seed", "run_id")


def failures_section(runs: pd.DataFrame, trials: pd.DataFrame, superseded: pd.DataFrame) -> list[str]:
    lines = ["## ⚠ Failed runs and trials", ""]
    bad = runs[runs["failed"]].sort_values(["tuner", "budget", "seed"])
    bad_trials = trials[(trials["status"] == "FAILED") | (trials["error"] != "")].sort_values(
        ["run_id", "started_seconds"]
    )
    if bad.empty and bad_trials.empty and superseded.empty:
        return lines + ["None: every run and trial finished.", ""]
    if not bad.empty:
        failed = [
            LeftOutRunRow(r.tuner, r.budget, str(int(r.seed)), r.run_id, r.stopped_by, cell_text(r.error or "–"))
            for r in bad.itertuples()
        ]
        lines += [
            f"{len(bad)} failed run(s): counted in *seeds total*, left out of means, intervals, paired "
            "differences and ranks.",
            "",
            record_table(failed, LEFT_OUT_RUN_HEADER),
            "",
        ]
    if not bad_trials.empty:
        failed_trials = [
            FailedTrialRow(r.tuner, r.budget, plain(r.seed), r.run_id, r.trial_id, r.status, cell_text(r.error or "–"))
            for r in bad_trials.itertuples()
        ]
        lines += [f"{len(bad_trials)} failed trial(s):", "", record_table(failed_trials, FAILED_TRIAL_HEADER), ""]
    if not superseded.empty:
        replaced = [
            LeftOutRunRow(r.tuner, r.budget, plain(r.seed), r.run_id, r.stopped_by, cell_text(r.error or "–"))
            for r in superseded.itertuples()
        ]
        lines += [
            f"{len(superseded)} run(s) superseded by a later run of the same tuner, budget and seed (left out "
            "of every number):",
            "",
            record_table(replaced, LEFT_OUT_RUN_HEADER),
            "",
        ]
    return lines


def no_promotion_section(runs: pd.DataFrame) -> list[str]:
    """Hyperband runs that finished no bracket: under their label ran a 1-epoch random search."""
    bare = runs[pd.to_numeric(runs["brackets_completed"], errors="coerce") == 0]
    if bare.empty:
        return []
    rows = [BareHyperbandRow(r.budget, str(int(r.seed)), r.run_id) for r in bare.itertuples()]
    return [
        "## ⚠ Hyperband runs without a promotion",
        "",
        f"{len(bare)} Hyperband run(s) completed no bracket (the deadline came first on this machine): their rows are "
        "a 1-epoch random search, not Hyperband.",
        "",
        record_table(rows, BARE_HYPERBAND_HEADER),
        "",
    ]
