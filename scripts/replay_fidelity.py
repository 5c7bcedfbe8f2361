"""Does a replay rank the tuners as real training does? One real results folder against one replayed folder.

    python scripts/replay_fidelity.py REAL_DIR REPLAY_DIR [--out FILE]

Per budget both folders ran, per tuner: its mean test accuracy and its Δ against the baseline (paired by seed, with
the 95% interval, as the report computes it: fmbench/report/comparisons.py) in each folder; the difference between
the two Δs (replay minus real; the folders' seeds are independent, so their standard errors add, Welch's degrees of
freedom), its 95% interval, whether that interval holds 0 (*agree*), and the smallest such difference the comparison
detects with 80% power; then each folder's mean rank of the tuners (baseline included, as the report ranks them:
fmbench/report/ranks.py) and Kendall's tau between the two rankings; and, for each tuner whose model proposes after a
random start, how much its model's trials beat its random start's in each folder (a surrogate smoother than training
would flatter model-based tuners). Last, the surrogate on the real runs' own trials: every completed trial trained
from fresh weights, its measured validation accuracy against the surrogate's prediction for its configuration and
epochs (the replay's table, fitted whole: no real trial is in it). The real folder is the test: nothing in a replay
may be fitted to it. The markdown goes to stdout, or to --out. Exit 2 with one line on folders it cannot read or
that share no budget.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402

from scipy import stats as scipy_stats  # noqa: E402
from tabulate import tabulate  # noqa: E402

from fmbench import atomic, resultset  # noqa: E402
from fmbench.registry import BASELINE  # noqa: E402
from fmbench.report import comparisons, ranks  # noqa: E402
from fmbench.results import ResultsError  # noqa: E402
from fmbench.stats import CONFIDENCE, Difference, detectable_difference, paired_difference  # noqa: E402


class FidelityError(Exception):
    """Input this comparison cannot judge: the message is the one line printed before exit 2."""


def _deltas(runs) -> dict[tuple[str, str], Difference]:
    """(tuner, budget) -> its test accuracy's difference from the baseline, paired by seed."""
    return {(row.tuner, row.budget): row.versus.diff for row in comparisons.accuracy_rows(runs) if row.versus}


def _means(runs) -> dict[tuple[str, str], float]:
    ok = runs[~runs["failed"]]
    return ok.groupby(["tuner", "budget"])["test_accuracy"].mean().to_dict()


def _mean_ranks(runs, budget: str) -> dict[str, float]:
    """Each tuner's mean rank over the seeds of one budget, the baseline ranked beside them."""
    ok = runs[~runs["failed"]]
    rows = ok[(ok["budget"] == budget) | (ok["tuner"] == BASELINE)]
    return ranks.seed_ranks(rows).mean().to_dict()


@dataclass(frozen=True)
class Gap:
    """Replay's Δ minus real's, in points: independent seeds, so the standard errors add (Welch)."""

    mean: float
    low: float | None
    high: float | None
    detectable: float | None

    @classmethod
    def of(cls, real: Difference, replay: Difference) -> Gap:
        mean = (replay.mean - real.mean) * 100
        if real.se is None or replay.se is None:
            return cls(mean, None, None, None)
        se = math.hypot(real.se, replay.se)
        df = se**4 / (real.se**4 / real.df + replay.se**4 / replay.df)
        half = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
        detectable = detectable_difference(df, se)
        return cls(mean, mean - half * 100, mean + half * 100, None if detectable is None else detectable * 100)

    @property
    def agree(self) -> str:
        if self.low is None:
            return "no interval"
        return "yes" if self.low <= 0 <= self.high else "NO"

    def text(self) -> str:
        return f"{self.mean:+.2f}" if self.low is None else f"{self.mean:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def _interval(d: Difference) -> str:
    if d.low is None:
        return f"{d.mean * 100:+.2f} (n={d.n})"
    return f"{d.mean * 100:+.2f} [{d.low * 100:+.2f}, {d.high * 100:+.2f}] (n={d.n})"


def compare(real_dir: Path, replay_dir: Path, command: str = "") -> str:
    try:
        real_set, replay_set = resultset.load(real_dir), resultset.load(replay_dir)
    except ResultsError as exc:
        raise FidelityError(str(exc)) from None
    real, replay = real_set.runs, replay_set.runs
    budgets = sorted(
        set(real.loc[real.tuner != BASELINE, "budget"]) & set(replay.loc[replay.tuner != BASELINE, "budget"])
    )
    if not budgets:
        raise FidelityError(f"{real_dir} and {replay_dir} share no budget: compare runs of the same profile")
    real_delta, replay_delta = _deltas(real), _deltas(replay)
    real_mean, replay_mean = _means(real), _means(replay)
    lines = [f"# Replay against real: {replay_dir} vs {real_dir}", ""]
    if command:
        lines += [f"Made by `{command}`.", ""]
    for budget in budgets:
        real_ranks, replay_ranks = _mean_ranks(real, budget), _mean_ranks(replay, budget)
        tuners = [t for t in real_ranks if t in replay_ranks]
        table = []
        for tuner in tuners:
            key = (tuner, "none" if tuner == BASELINE else budget)  # resultset names the baseline's budget none
            means = [f"{m[key]:.4f}" if key in m else "–" for m in (real_mean, replay_mean)]
            if key in real_delta and key in replay_delta:
                gap = Gap.of(real_delta[key], replay_delta[key])
                compared = [_interval(real_delta[key]), _interval(replay_delta[key]), gap.text(), gap.agree]
                compared.append("–" if gap.detectable is None else f"{gap.detectable:.2f}")
            else:
                compared = ["–"] * 5
            table.append([tuner, *means, *compared, f"{real_ranks[tuner]:.2f}", f"{replay_ranks[tuner]:.2f}"])
        tau = scipy_stats.kendalltau([real_ranks[t] for t in tuners], [replay_ranks[t] for t in tuners])
        headers = [
            "tuner",
            "test acc, real",
            "test acc, replay",
            "Δ vs baseline, real (pts)",
            "Δ vs baseline, replay (pts)",
            "replay − real (pts)",
            "agree",
            "detectable (pts)",
            "mean rank, real",
            "mean rank, replay",
        ]
        lines += [
            f"## Budget {budget}",
            "",
            tabulate(table, headers, tablefmt="github", disable_numparse=True),
            "",
            f"Kendall's tau between the two rankings of {len(tuners)} tuners: {tau.statistic:+.2f} "
            f"(p {tau.pvalue:.3g}).",
            "",
            *_proposals_lines(real_set.trials, replay_set.trials, budget),
        ]
    lines += [
        "Test acc: the mean over finished seeds. Δ: test accuracy minus the baseline's, paired by seed, mean with its "
        "95% paired t interval. *replay − real*: the two Δs' difference with its 95% interval (independent seeds: "
        "standard errors added, Welch's degrees of freedom); *agree*: that interval holds 0; *detectable*: the "
        "smallest true difference between the two Δs this comparison finds with 80% power at 5% (two-sided). "
        "Mean rank: per seed, the tuners (baseline included) ranked by test accuracy, 1 = best, averaged over the "
        "seeds.",
        "",
        *_trials_section(real_set, replay),
    ]
    return "\n".join(lines) + "\n"


def _proposal_gain(trials, tuner: str, budget: str) -> Difference | None:
    """Per seed, the median validation accuracy of the trials `tuner`'s model proposed minus that of its random
    start's, paired by seed (medians: one diverged trial would drown a mean); None without both kinds."""
    done = trials[
        (trials["tuner"] == tuner)
        & (trials["budget"] == budget)
        & (trials["status"] == "COMPLETED")
        & trials["val_accuracy"].notna()
    ]
    medians = done.groupby(["proposed_by", "seed"])["val_accuracy"].median()
    if not {"model", "random"} <= set(medians.index.get_level_values(0)):
        return None
    return paired_difference(medians["model"].to_dict(), medians["random"].to_dict())


def _proposals_lines(real_trials, replay_trials, budget: str) -> list[str]:
    """Do a model's proposals beat its own random start by as much in the replay as in real training? A surrogate
    smoother than training would flatter the model-based tuners, the bias YAHPO Gym's authors warn tables have."""
    rows = []
    for tuner in sorted(set(real_trials["tuner"]) & set(replay_trials["tuner"])):
        real, replay = _proposal_gain(real_trials, tuner, budget), _proposal_gain(replay_trials, tuner, budget)
        if real is None or replay is None:
            continue
        gap = Gap.of(real, replay)
        detectable = "–" if gap.detectable is None else f"{gap.detectable:.2f}"
        rows.append([tuner, _interval(real), _interval(replay), gap.text(), gap.agree, detectable])
    if not rows:
        return []
    headers = ["tuner", "model − random start, real (pts)", "model − random start, replay (pts)"]
    return [
        tabulate(rows, [*headers, "replay − real (pts)", "agree", "detectable (pts)"], "github", disable_numparse=True),
        "",
        "Model − random start: per seed, the median validation accuracy of the trials the tuner's model proposed "
        "minus that of its random start's trials, averaged over the seeds with its 95% paired t interval; the other "
        "columns as above.",
        "",
    ]


def _table_dir(replay) -> Path:
    """The one table the replayed rows name (relative names are the repository's)."""
    names = sorted(set(replay["replay_table"].dropna()) - {""})
    if len(names) != 1:
        raise FidelityError(f"the replayed rows name {len(names)} tables ({', '.join(names) or 'none'}), not one")
    path = Path(names[0])
    return path if path.is_absolute() else REPO / path


def _trials_section(real_set, replay) -> list[str]:
    """The surrogate on the real runs' trials trained from fresh weights (a promotion's resumed curve is not one
    the table measured), per tuner and in all."""
    from fmbench.replay import fidelity, trainer
    from fmbench.space import MLP

    table, surrogate, _ = trainer.fitted(_table_dir(replay))
    trials = real_set.trials
    fresh = trials[
        (trials["status"] == "COMPLETED")
        & (trials["initial_epoch"].fillna(0) == 0)
        & trials["epochs"].between(1, table.settings.epochs)
        & trials["val_accuracy"].notna()
    ]
    predicted = [
        float(surrogate.mean([MLP.active(json.loads(t.hyperparameters))], int(t.epochs), "val")[0])
        for t in fresh.itertuples()
    ]
    fresh = fresh.assign(predicted=predicted)
    rows = []
    for tuner, group in [*fresh.groupby("tuner", sort=False), ("all", fresh)]:
        if len(group) < fidelity.MIN_HELD_OUT:
            continue
        a = fidelity.agreement(group["val_accuracy"], group["predicted"])
        gap = (group["val_accuracy"] - group["predicted"]).mean() * 100
        rows.append([tuner, a.count, f"{a.r2:.3f}", f"{a.spearman:.3f}", f"{a.kendall:.3f}", f"{gap:+.2f}"])
    headers = ["trials of", "trials", "R^2", "Spearman", "Kendall tau", "measured − predicted (pts)"]
    return [
        "## The surrogate on the real runs' own trials",
        "",
        f"Every completed trial of {', '.join(sorted(set(real_set.runs.tuner) - {BASELINE}))} trained from fresh "
        f"weights (epochs 1 to {table.settings.epochs}; Hyperband's promotions continue a curve and are left out): "
        "its measured validation accuracy against the surrogate's mean for its configuration and epochs. The "
        "surrogate is the replay's, fitted on its whole table; no real trial is in the table.",
        "",
        tabulate(rows, headers, tablefmt="github", disable_numparse=True),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", type=Path, help="the real runs' results folder, e.g. results/standard-fresh")
    parser.add_argument("replay", type=Path, help="the replayed runs' results folder")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of stdout")
    args = parser.parse_args(argv)
    try:
        text = compare(args.real, args.replay, _command(argv))
    except FidelityError as exc:
        print(f"replay_fidelity: {exc}", file=sys.stderr)
        return 2
    if args.out:
        atomic.write_text(args.out, text)  # a cut run leaves the previous file whole
    else:
        print(text, end="")
    return 0


def _command(argv: list[str] | None) -> str:
    return shlex.join(["python", "scripts/replay_fidelity.py", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
