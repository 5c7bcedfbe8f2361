"""Do two Keras backends give the same answers? The one comparison across backends fmbench makes on purpose.

    python scripts/backend_equivalence.py REFERENCE_DIR OTHER_DIR [--margin POINTS] [--out FILE]

Each folder holds one backend's rows of the same cells and seeds (docs/backends.md says which command made
results/backend-equivalence). Cell by cell, the other backend's test accuracy is compared with the reference's,
paired by seed (the same seed gives both the same data, and random search the same configurations), with the
paired t interval of the mean difference: the backends agree within the margin (default ±0.5 points) when that
whole interval lies inside it. Beside it, each backend's median wall seconds per cell and their ratio. The
markdown table goes to stdout, or to --out. Exit 2 with one line on unreadable folders or no common cell.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

from fmbench import resultset, stats  # noqa: E402
from fmbench.results import ResultsError  # noqa: E402


class EquivalenceError(Exception):
    """Input this comparison cannot judge: the message is the one line printed before exit 2."""


def _backend(rows) -> str:
    first = rows.iloc[0]
    library = "jax_version" if first.keras_backend == "jax" else "tensorflow_version"
    return f"{first.keras_backend} {first[library]}"


def _cells(rows) -> dict[tuple[str, str], dict[int, tuple[float, float]]]:
    """(tuner, budget) -> seed -> (test accuracy, wall seconds)."""
    cells: dict = {}
    for row in rows.itertuples():
        cells.setdefault((row.tuner, row.budget), {})[int(row.seed)] = (
            float(row.test_accuracy),
            float(row.wall_seconds),
        )
    return cells


def compare(reference_dir: Path, other_dir: Path, margin: float) -> str:
    try:
        reference, other = resultset.load(reference_dir).ok, resultset.load(other_dir).ok
    except ResultsError as exc:
        raise EquivalenceError(str(exc)) from None
    if reference.empty or other.empty:
        raise EquivalenceError(f"no finished run in {reference_dir if reference.empty else other_dir}")
    ref_name, other_name = _backend(reference), _backend(other)
    ref_cells, other_cells = _cells(reference), _cells(other)
    common = [cell for cell in ref_cells if cell in other_cells]
    if not common:
        raise EquivalenceError(f"{reference_dir} and {other_dir} share no cell: run the same cells on both backends")
    lines = []
    for tuner, budget in common:
        ref, oth = ref_cells[(tuner, budget)], other_cells[(tuner, budget)]
        diff = stats.paired_difference({s: v[0] for s, v in oth.items()}, {s: v[0] for s, v in ref.items()})
        seeds = sorted(set(ref) & set(oth))
        ref_seconds = np.median([ref[s][1] for s in seeds])
        other_seconds = np.median([oth[s][1] for s in seeds])
        inside = diff.low is not None and -margin <= 100 * diff.low and 100 * diff.high <= margin
        lines.append(
            [
                tuner,
                budget,
                len(seeds),
                f"{100 * np.mean([ref[s][0] for s in seeds]):.2f}",
                f"{100 * np.mean([oth[s][0] for s in seeds]):.2f}",
                f"{100 * diff.mean:+.2f}",
                "–" if diff.low is None else f"{100 * diff.low:+.2f} to {100 * diff.high:+.2f}",
                "–" if diff.p_value is None else f"{diff.p_value:.2g}",
                f"yes (±{margin:g})" if inside else f"not shown (±{margin:g})",
                f"{ref_seconds:.1f}",
                f"{other_seconds:.1f}",
                f"{other_seconds / ref_seconds:.2f}",
            ]
        )
    header = [
        "tuner",
        "budget",
        "seeds",
        f"test acc % ({ref_name})",
        f"test acc % ({other_name})",
        "Δ points",
        "95% CI",
        "p",
        "agree",
        "median s (ref)",
        "median s (other)",
        "s ratio",
    ]
    machines = sorted(set(reference.cpu_model) | set(other.cpu_model))
    commits = sorted(set(reference.commit) | set(other.commit))
    return (
        f"# {other_name} against {ref_name}\n\n"
        f"Rows: `{reference_dir}` (reference) and `{other_dir}`; machine {', '.join(machines)}; "
        f"commit {', '.join(commits)}. Δ is {other_name} minus {ref_name}, paired by seed (paired t, 95% interval); "
        f"the backends agree on a cell when the whole interval lies within ±{margin:g} points.\n\n"
        + tabulate(lines, header, tablefmt="github", disable_numparse=True)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--margin", type=float, default=0.5, help="points either side of 0 (default 0.5)")
    parser.add_argument("--out", type=Path, help="write the markdown here instead of stdout")
    args = parser.parse_args(argv)
    try:
        text = compare(args.reference, args.other, args.margin)
    except EquivalenceError as exc:
        print(f"backend_equivalence: {exc}", file=sys.stderr)
        return 2
    if args.out is None:
        print(text, end="")
    else:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
