"""PNG plots for the report: best-so-far validation accuracy against seconds and epochs, test accuracy per seed."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd

from fmbench import atomic, stats
from fmbench.registry import BASELINE
from fmbench.resultset import ResultSet, cell_order, cell_rows

matplotlib.use("Agg")  # files only, no display; pyplot must come after the choice
import matplotlib.pyplot as plt  # noqa: E402 - after matplotlib.use

# No timestamps or version strings in the files: rebuilding from the same rows gives the same bytes.
PNG_METADATA = {"Software": None}


def progress(trials: pd.DataFrame) -> tuple[list[float], list[float], list[float]]:
    """One run's trials in start order: (end in search seconds, cumulative epochs at the end, val accuracy)."""
    t = trials.sort_values(["started_seconds", "trial_id"], kind="stable")
    ends = list(t["started_seconds"] + t["seconds"])
    epochs = list(np.cumsum(t["epochs"].to_numpy(dtype=float)))
    return ends, epochs, list(t["val_accuracy"])


def band(curves: list[tuple[list[float], list[float]]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max across runs of best-so-far step functions, on the union of their steps.

    Starts where every run has a value, so the mean never mixes a different set of runs; a finished run keeps its best.
    """
    grid = np.unique(np.concatenate([np.asarray(xs, dtype=float) for xs, _ in curves]))
    values = np.vstack([stats.best_so_far(xs, ys, grid) for xs, ys in curves])
    full = ~np.isnan(values).any(axis=0)
    grid, values = grid[full], values[:, full]
    return grid, values.mean(axis=0), values.min(axis=0), values.max(axis=0)


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=100, metadata=PNG_METADATA)
    finally:
        plt.close(fig)
    atomic.write_bytes(path, buffer.getvalue())


def _progress_plot(runs, trials, target, axis: int, xlabel: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (tuner, budget) in enumerate(
        cell_order(zip(runs["tuner"], runs["budget"]))
    ):  # same colour per cell in every plot
        if tuner == BASELINE:
            continue
        ids = cell_rows(runs, tuner, budget)["run_id"]
        curves = []
        for run_id in sorted(ids):
            own = trials[(trials["run_id"] == run_id) & trials["val_accuracy"].notna()]
            if len(own):
                track = progress(own)
                curves.append((track[axis], track[2]))
        if not curves:
            continue
        grid, mean, low, high = band(curves)
        if len(grid) == 0:
            continue
        color = f"C{i % 10}"
        ax.step(grid, mean, where="post", color=color, label=f"{tuner} {budget} (mean of {len(curves)}, min–max band)")
        ax.fill_between(grid, low, high, step="post", color=color, alpha=0.2, linewidth=0)
    if target is not None:
        ax.axhline(target, color="black", linestyle="--", label=f"baseline val accuracy {target:.4f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(f"Search progress against {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    _save(fig, path)


def _test_plot(runs, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = []
    for i, (tuner, budget) in enumerate(cell_order(zip(runs["tuner"], runs["budget"]))):
        every = cell_rows(runs, tuner, budget)
        group = every[~every["failed"]].sort_values("seed")
        labels.append(f"{tuner}\n{'' if tuner == BASELINE else budget}\n{len(group)}/{len(every)} ok")
        values = group["test_accuracy"].to_numpy(dtype=float)
        if len(values) == 0:
            continue
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + offsets, values, color=f"C{i % 10}", zorder=3, s=20)
        interval = stats.mean_interval(values)
        if interval.low is not None:
            ax.errorbar(
                i + 0.3,
                interval.mean,
                yerr=[[interval.mean - interval.low], [interval.high - interval.mean]],
                fmt="o",
                color="black",
                capsize=4,
                markersize=4,
            )
        else:
            ax.plot(i + 0.3, interval.mean, "o", color="black", markersize=4)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel("test accuracy")
    ax.set_title("Test accuracy: dots are seeds, black is the mean with its 95% t interval")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _save(fig, path)


def write_all(rs: ResultSet, target: float | None, directory: Path, stem: str) -> list[tuple[str, str]]:
    """Write the three PNGs into directory; return (title, file name) pairs for relative links."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runs, trials = rs.runs, rs.trials
    names = {
        "Best-so-far validation accuracy against search seconds": f"{stem}-val-vs-seconds.png",
        "Best-so-far validation accuracy against cumulative epochs": f"{stem}-val-vs-epochs.png",
        "Test accuracy per seed": f"{stem}-test-accuracy.png",
    }
    paths = [directory / name for name in names.values()]
    with plt.rc_context({"svg.hashsalt": "fmbench"}):
        _progress_plot(runs, trials, target, 0, "search seconds (trial end)", paths[0])
        _progress_plot(runs, trials, target, 1, "cumulative epochs (all trials)", paths[1])
        _test_plot(runs, paths[2])
    return list(names.items())
