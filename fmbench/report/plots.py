"""PNG plots for the report, drawn for a reader's first five seconds.

One panel per budget (a 20-second search and a 36-epoch one never share an axis), one colour per tuner in every
figure of every report (its place in the registry), the baseline in black, the seeds as thin lines or dots beside
their mean, and the legend below the panels, off the data. The critical-difference diagram draws the same ranks
as the report's table (`ranks.per_budget`).
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from fmbench import atomic, stats
from fmbench.registry import BASELINE, TUNER_NAMES
from fmbench.report import ranks
from fmbench.resultset import ResultSet, cell_order, cell_rows

matplotlib.use("Agg")  # files only, no display; pyplot must come after the choice
import matplotlib.pyplot as plt  # noqa: E402 - after matplotlib.use
from matplotlib.lines import Line2D  # noqa: E402

# No timestamps or version strings in the files: rebuilding from the same rows gives the same bytes.
PNG_METADATA = {"Software": None}
BASELINE_COLOUR = "black"
PANEL_WIDTH, PANEL_HEIGHT = 4.6, 3.8  # inches per small multiple


def tuner_colour(tuner: str) -> str:
    """The tuner's colour in every figure: its place in the registry, so a report never recolours a tuner."""
    if tuner == BASELINE:
        return BASELINE_COLOUR
    return f"C{TUNER_NAMES.index(tuner) % 10}" if tuner in TUNER_NAMES else "grey"


def progress(trials: pd.DataFrame) -> tuple[list[float], list[float], list[float]]:
    """One run's trials in start order: (end in search seconds, cumulative epochs at the end, val accuracy)."""
    t = trials.sort_values(["started_seconds", "trial_id"], kind="stable")
    ends = list(t["started_seconds"] + t["seconds"])
    epochs = list(np.cumsum(t["epochs"].to_numpy(dtype=float)))
    return ends, epochs, list(t["val_accuracy"])


def mean_curve(curves: list[tuple[list[float], list[float]]]) -> tuple[np.ndarray, np.ndarray]:
    """The mean across runs of best-so-far step functions, on the union of their steps.

    Starts where every run has a value, so the mean never mixes a different set of runs; a finished run keeps its best.
    """
    grid = np.unique(np.concatenate([np.asarray(xs, dtype=float) for xs, _ in curves]))
    values = np.vstack([stats.best_so_far(xs, ys, grid) for xs, ys in curves])
    full = ~np.isnan(values).any(axis=0)
    return grid[full], values[:, full].mean(axis=0)


def _budgets(runs: pd.DataFrame) -> list[str]:
    return sorted(set(runs["budget"]) - {"none"})


def _tuners(runs: pd.DataFrame, budget: str) -> list[str]:
    return [t for t, b in cell_order(zip(runs["tuner"], runs["budget"])) if b == budget and t != BASELINE]


LEGEND_WIDTH = 3.4  # inches beside a single panel for its legend


def _panels(count: int, height: float = PANEL_HEIGHT):
    width = PANEL_WIDTH * count + (LEGEND_WIDTH if count == 1 else 0.6)
    fig, axes = plt.subplots(1, count, figsize=(width, height), sharey=True, squeeze=False, layout="constrained")
    return fig, list(axes[0])


def legend(fig, tuners: list[str], extra: list[tuple[Line2D, str]], panels: int) -> None:
    """Off the data: beside a single panel, below a row of them (as many columns as fit their width)."""
    handles = [Line2D([], [], color=tuner_colour(t), linewidth=2.5) for t in tuners] + [h for h, _ in extra]
    labels = list(tuners) + [label for _, label in extra]
    if panels == 1:
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
    else:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 2 * panels), frameon=False)


def save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, metadata=PNG_METADATA)
    finally:
        plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())


def _seed_curves(runs, trials, tuner: str, budget: str, axis: int) -> list[tuple[list[float], list[float]]]:
    curves = []
    for run_id in sorted(cell_rows(runs[~runs["failed"]], tuner, budget)["run_id"]):
        own = trials[(trials["run_id"] == run_id) & trials["val_accuracy"].notna()]
        if len(own):
            track = progress(own)
            curves.append((track[axis], track[2]))
    return curves


def _progress_plot(runs, trials, target, axis: int, xlabel: str, path: Path) -> bool:
    """Best validation accuracy so far, one panel per budget: a thin line per seed, a thick one for their mean."""
    budgets = _budgets(runs)
    if not budgets:
        return False
    fig, axes = _panels(len(budgets))
    shown = []
    finals = [] if target is None else [target]  # where the y axis must reach
    for ax, budget in zip(axes, budgets):
        seeds = 0
        for tuner in _tuners(runs, budget):
            curves = _seed_curves(runs, trials, tuner, budget, axis)
            if not curves:
                continue
            colour = tuner_colour(tuner)
            for xs, ys in curves:
                grid = np.unique(np.asarray(xs, dtype=float))
                ax.step(grid, stats.best_so_far(xs, ys, grid), where="post", color=colour, linewidth=0.7, alpha=0.35)
                finals.append(float(np.nanmax(np.asarray(ys, dtype=float))))
            grid, mean = mean_curve(curves)
            if len(grid):
                ax.step(grid, mean, where="post", color=colour, linewidth=2.2)
            shown.append(tuner)
            seeds = max(seeds, len(curves))
        if target is not None:
            ax.axhline(target, color=BASELINE_COLOUR, linestyle="--", linewidth=1.2)
        ax.set_title(f"budget {budget} ({seeds} seeds)")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    if finals:  # the early, poor trials would squash the part that matters: where the searches end
        low, high = min(finals), max(finals)
        axes[0].set_ylim(low - max(0.02, 0.6 * (high - low)), high + 0.005)
    axes[0].set_ylabel("best validation accuracy so far")
    extra = [(Line2D([], [], color="grey", linewidth=0.7, alpha=0.6), "one seed (thick: mean over seeds)")]
    if target is not None:
        extra.append((Line2D([], [], color=BASELINE_COLOUR, linestyle="--"), f"baseline {target:.4f} (mean)"))
    legend(fig, list(dict.fromkeys(shown)), extra, len(budgets))
    save(fig, path)
    return True


def _test_plot(runs, path: Path) -> bool:
    """Test accuracy per seed, one panel per budget with the baseline's row in each: dots are seeds, the black bar
    the mean with its 95% t interval."""
    budgets = _budgets(runs) or ["none"]
    base = cell_rows(runs, BASELINE, "none")
    rows_per_panel = max(len(_tuners(runs, b)) for b in budgets) + 1
    fig, axes = plt.subplots(
        1,
        len(budgets),
        figsize=(PANEL_WIDTH * len(budgets) + 1.2, 1.1 + 0.45 * rows_per_panel),
        sharex=True,
        squeeze=False,
        layout="constrained",
    )
    for ax, budget in zip(axes[0], budgets):
        names = [BASELINE, *_tuners(runs, budget)] if len(base) else _tuners(runs, budget)
        labels = []
        for row, tuner in enumerate(names):
            every = base if tuner == BASELINE else cell_rows(runs, tuner, budget)
            group = every[~every["failed"]]
            values = group["test_accuracy"].to_numpy(dtype=float)
            labels.append(tuner if len(group) == len(every) else f"{tuner} ({len(group)}/{len(every)} ok)")
            if len(values) == 0:
                continue
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(values, row + jitter, color=tuner_colour(tuner), s=22, zorder=3)
            interval = stats.mean_interval(values)
            if interval.low is not None:
                ax.plot([interval.low, interval.high], [row + 0.32] * 2, color="black", linewidth=1.6)
            ax.plot(interval.mean, row + 0.32, "|", color="black", markersize=9, markeredgewidth=2)
            if tuner == BASELINE:
                ax.axvline(interval.mean, color=BASELINE_COLOUR, linestyle=":", linewidth=1)
        ax.set_yticks(range(len(names)), labels)
        ax.set_ylim(len(names) - 0.5, -0.6)  # baseline on top
        ax.set_title("no budget" if budget == "none" else f"budget {budget}")
        ax.set_xlabel("test accuracy")
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle(
        "Test accuracy per seed (dots)\nbar: the mean and its 95% interval; dotted: the baseline's mean", fontsize=10
    )
    save(fig, path)
    return True


def _critical_difference_plot(runs, path: Path) -> bool:
    """Demsar's diagram per budget: mean ranks on an axis (1 = best), a bar over each group of tuners whose mean
    ranks lie within Nemenyi's critical difference of each other, and the critical difference itself."""
    ok = runs[~runs["failed"]]
    found = ranks.per_budget(ok, ok[ok["tuner"] == BASELINE])
    if not found:
        return False
    k_most = max(len(cd.mean_ranks) for cd in found.values())
    fig, axes = plt.subplots(
        len(found), 1, figsize=(8, (1.2 + 0.32 * k_most) * len(found) + 0.3), squeeze=False, layout="constrained"
    )
    for ax, (budget, cd) in zip(axes[:, 0], found.items()):
        _draw_critical_difference(ax, budget, cd)
    save(fig, path)
    return True


def _draw_critical_difference(ax, budget: str, cd: ranks.CriticalDifference) -> None:
    ordered = sorted(cd.mean_ranks, key=lambda t: (cd.mean_ranks[t], t))
    k = len(ordered)
    half = (k + 1) // 2  # the better half is named on the left, the rest on the right
    depth = max(half, k - half)
    ax.set_xlim(0.3 - 1.3, k + 1.3 + 0.7)
    ax.set_ylim(-(depth + 1.2), 1.4)
    ax.axis("off")
    ax.plot([1, k], [0, 0], color="black", linewidth=1)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, 0.12], color="black", linewidth=1)
        ax.text(tick, 0.2, str(tick), ha="center", va="bottom", fontsize=9)
    for i, tuner in enumerate(ordered):
        rank, left = cd.mean_ranks[tuner], i < half
        level = -(i + 1 if left else k - i)
        edge = 0.6 if left else k + 0.4
        colour = tuner_colour(tuner)
        ax.plot([rank, rank, edge], [0, level, level], color=colour, linewidth=1.2)
        ax.text(
            edge - 0.08 if left else edge + 0.08,
            level,
            f"{tuner} {rank:.2f}" if left else f"{rank:.2f} {tuner}",
            ha="right" if left else "left",
            va="center",
            fontsize=9,
            color=colour,
        )
    for j, group in enumerate(cd.groups()):
        low, high = min(cd.mean_ranks[t] for t in group), max(cd.mean_ranks[t] for t in group)
        ax.plot([low - 0.04, high + 0.04], [-0.35 - 0.18 * j] * 2, color="black", linewidth=3.5)
    if cd.critical_difference <= k - 1:
        ends = [1, 1 + cd.critical_difference]
        ax.plot(ends, [1.0, 1.0], color="black", linewidth=1.2)
        ax.plot([ends, ends], [[0.92, 0.92], [1.08, 1.08]], color="black", linewidth=1.2)
        ax.text(1 + cd.critical_difference / 2, 1.08, f"CD {cd.critical_difference:.2f}", ha="center", fontsize=9)
    else:
        ax.text(1, 1.0, f"CD {cd.critical_difference:.2f}: wider than the axis", fontsize=9)
    friedman = "identical ranks" if cd.friedman_p is None else f"Friedman p = {cd.friedman_p:.3f}"
    ax.set_title(
        f"budget {budget}: mean rank over {cd.seeds} seeds (1 = best); a bar joins tuners not significantly "
        f"different ({friedman})",
        fontsize=9,
        loc="left",
    )


def write_all(rs: ResultSet, target: float | None, directory: Path, stem: str) -> list[tuple[str, str]]:
    """Write the report's PNGs into directory; return (title, file name) pairs for relative links, one per figure
    drawn (a folder with no tuned run, or no budget with three rankable runs, has fewer)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runs, trials = rs.runs, rs.trials
    figures = [
        (
            "Best-so-far validation accuracy against search seconds",
            f"{stem}-val-vs-seconds.png",
            lambda p: _progress_plot(runs, trials, target, 0, "search seconds (trial end)", p),
        ),
        (
            "Best-so-far validation accuracy against cumulative epochs",
            f"{stem}-val-vs-epochs.png",
            lambda p: _progress_plot(runs, trials, target, 1, "cumulative epochs (all trials)", p),
        ),
        ("Test accuracy per seed", f"{stem}-test-accuracy.png", lambda p: _test_plot(runs, p)),
        (
            "Critical-difference diagram per budget",
            f"{stem}-critical-difference.png",
            lambda p: _critical_difference_plot(runs, p),
        ),
    ]
    written = []
    with plt.rc_context({"svg.hashsalt": "fmbench"}):
        for title, name, draw in figures:
            if draw(directory / name):
                written.append((title, name))
    return written
