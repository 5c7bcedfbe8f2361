"""Does a replay rank the tuners as real training does? One real results folder against one replayed folder.

    python scripts/replay_fidelity.py REAL_DIR REPLAY_DIR [--out FILE]

Per budget both folders ran, per tuner: its mean test-accuracy Δ against the baseline (paired by seed, with the
95% interval, as the report computes it: fmbench/report/comparisons.py) in each folder, and whether the two agree
(the same sign, or intervals that overlap); then each folder's mean rank of the tuners (baseline included, as the
report ranks them: fmbench/report/ranks.py) and Kendall's tau between the two rankings. The real folder is the
test: nothing in a replay may be fitted to it. The markdown table goes to stdout, or to --out. Exit 2 with one line
on folders it cannot read or that share no budget.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scipy import stats as scipy_stats  # noqa: E402
from tabulate import tabulate  # noqa: E402

from fmbench import resultset  # noqa: E402
from fmbench.registry import BASELINE  # noqa: E402
from fmbench.report import comparisons, ranks  # noqa: E402
from fmbench.results import ResultsError  # noqa: E402


class FidelityError(Exception):
    """Input this comparison cannot judge: the message is the one line printed before exit 2."""


def _deltas(runs) -> dict[tuple[str, str], tuple[float, float | None, float | None, int]]:
    """(tuner, budget) -> (mean Δ vs baseline, interval low, high, pairs), in points."""
    out = {}
    for row in comparisons.accuracy_rows(runs):
        if row.versus is not None:
            d = row.versus.diff
            scale = lambda v: None if v is None else v * 100  # noqa: E731 - one-line helper
            out[(row.tuner, row.budget)] = (d.mean * 100, scale(d.low), scale(d.high), d.n)
    return out


def _mean_ranks(runs, budget: str) -> dict[str, float]:
    """Each tuner's mean rank over the seeds of one budget, the baseline ranked beside them."""
    ok = runs[~runs["failed"]]
    rows = ok[(ok["budget"] == budget) | (ok["tuner"] == BASELINE)]
    return ranks.seed_ranks(rows).mean().to_dict()


def _agree(real, replay) -> str:
    if real[1] is None or replay[1] is None:
        return "no interval"
    if (real[0] > 0) == (replay[0] > 0) or (real[1] <= replay[2] and replay[1] <= real[2]):
        return "yes"
    return "NO"


def _interval(delta) -> str:
    mean, low, high, n = delta
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] (n={n})" if low is not None else f"{mean:+.2f} (n={n})"


def compare(real_dir: Path, replay_dir: Path) -> str:
    try:
        real, replay = resultset.load(real_dir).runs, resultset.load(replay_dir).runs
    except ResultsError as exc:
        raise FidelityError(str(exc)) from None
    budgets = sorted(
        set(real.loc[real.tuner != BASELINE, "budget"]) & set(replay.loc[replay.tuner != BASELINE, "budget"])
    )
    if not budgets:
        raise FidelityError(f"{real_dir} and {replay_dir} share no budget: compare runs of the same profile")
    real_delta, replay_delta = _deltas(real), _deltas(replay)
    lines = [f"# Replay against real: {replay_dir} vs {real_dir}", ""]
    for budget in budgets:
        real_ranks, replay_ranks = _mean_ranks(real, budget), _mean_ranks(replay, budget)
        tuners = [t for t in real_ranks if t in replay_ranks]
        table = []
        for tuner in tuners:
            key = (tuner, budget)
            both = key in real_delta and key in replay_delta
            table.append(
                [
                    tuner,
                    _interval(real_delta[key]) if key in real_delta else "–",
                    _interval(replay_delta[key]) if key in replay_delta else "–",
                    _agree(real_delta[key], replay_delta[key]) if both else "–",
                    f"{real_ranks[tuner]:.2f}",
                    f"{replay_ranks[tuner]:.2f}",
                ]
            )
        tau = scipy_stats.kendalltau([real_ranks[t] for t in tuners], [replay_ranks[t] for t in tuners])
        headers = [
            "tuner",
            "Δ vs baseline, real (pts)",
            "Δ vs baseline, replay (pts)",
            "agree",
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
        ]
    lines.append(
        "Δ: test accuracy minus the baseline's, paired by seed, mean with its 95% paired t interval. *agree*: the "
        "same sign, or intervals that overlap. Mean rank: per seed, the tuners (baseline included) ranked by test "
        "accuracy, 1 = best, averaged over the seeds."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real", type=Path, help="the real runs' results folder, e.g. results/standard-fresh")
    parser.add_argument("replay", type=Path, help="the replayed runs' results folder")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of stdout")
    args = parser.parse_args(argv)
    try:
        text = compare(args.real, args.replay)
    except FidelityError as exc:
        print(f"replay_fidelity: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
