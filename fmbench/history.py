"""History across commits: gate runs (or any matrix runs) kept per machine and commit, each cell's accuracy and
seconds drawn across them, and the commits where a cell stepped down.

The store is a results folder (runs.csv, trials.csv) that `fmbench history STORE --add RESULTS_DIR` extends with
one run's current rows; each row already records its machine and commit. A machine is its CPU model, core count
and GPU, so a fresh VM of the same kind continues the same line while another kind of machine gets its own.

A step down is what the gate would have failed: each commit checked against the one before it on the same
machine, with the previous commit's rows as the reference (`fmbench check`'s paired tests and Holm's correction,
whose false-alarm rate docs/gate.md states). A fixed percentage would flag noisy cells on every commit and miss a
drop spread thinly over many cells; the gate's family of tests does neither. Seconds are drawn, not tested: on
shared machines they move with the load.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from fmbench import atomic, results, resultset
from fmbench.gate import RegressError, evidence, noise, verdicts
from fmbench.gate import reference as ref_io
from fmbench.registry import BASELINE
from fmbench.report import plots
from fmbench.report.tables import table
from fmbench.results import ResultsError
from fmbench.resultset import ResultSet, cell_order
from fmbench.schema import RUN_COLUMNS, TRIAL_COLUMNS


@dataclass(frozen=True)
class Commit:
    """One machine's run at one commit: its rows, in the order the store's runs were made."""

    machine: str
    commit: str
    started_at: str
    rs: ResultSet

    @property
    def label(self) -> str:
        return _label(self.commit)


def _label(commit: str) -> str:
    """A short commit name, keeping '-dirty': 2935c3e-dirty."""
    sha, _, dirty = commit.partition("-")
    return sha[:7] + (f"-{dirty}" if dirty else "")


@dataclass(frozen=True)
class Step:
    machine: str
    commit: str  # the first commit at the lower level
    before: str  # the commit it was checked against
    cell: str
    drop_points: float | None  # None where the step is a failed run, not a measured drop
    why: str  # the gate's one-line reason, with its p and Holm level


def machine_of(runs: pd.DataFrame) -> pd.Series:
    """The machine key of each row: CPU model, cores, GPU (the host name changes with every VM) and Keras backend,
    each backend its own line, and replayed rows a line of their own: a step between two backends, or between a
    replay and a real run, would measure that difference, not the commit."""
    cores = pd.to_numeric(runs["cpu_cores"], errors="coerce").fillna(0).astype(int).astype(str)
    backend = runs["keras_backend"].replace("", resultset.UNNAMED_BACKEND).astype(str)
    replayed = (runs["trainer"] == "replay").map({True: ", replayed", False: ""})
    return (
        runs["cpu_model"].astype(str) + ", " + cores + " cores, " + runs["gpu_model"].astype(str) + ", " + backend
    ) + replayed


def add(store: Path, directories) -> Commit:
    """Append the current rows of one machine's run at one commit to the store; refuse a commit it already holds."""
    rs = resultset.load(directories)
    machines, commits = sorted(set(machine_of(rs.runs))), sorted(set(rs.runs["commit"].astype(str)))
    if len(machines) != 1 or len(commits) != 1:
        raise ResultsError(
            f"{rs.describe()}: rows from {len(machines)} machine(s) and {len(commits)} commit(s) "
            f"({', '.join(commits)}); add one machine's run of one commit at a time"
        )
    store = Path(store)
    if (store / results.RUNS_FILE).exists() and (machines[0], commits[0]) in dict(_groups(store)):
        raise ResultsError(
            f"{store} already holds commit {commits[0]} on {machines[0]}: the history keeps one run per commit "
            "and machine; rerun at a new commit, or add to another store"
        )
    # The store's own rows stay as they were: both tables are appended, trials first (a run row marks it complete),
    # in the schema's types, so a seed read as 1 is stored as 1 (results.append_rows writes integers as integers).
    results.append_rows(store / results.TRIALS_FILE, rs.trials.to_dict("records"), TRIAL_COLUMNS)
    results.append_rows(store / results.RUNS_FILE, rs.runs[RUN_COLUMNS].to_dict("records"), RUN_COLUMNS)
    return Commit(machines[0], commits[0], str(rs.runs["started_at"].min()), rs)


def commits(store: Path) -> list[Commit]:
    """The store's runs, one per machine and commit, each machine's in the order they ran."""
    if not (Path(store) / results.RUNS_FILE).exists():
        raise ResultsError(f"{store}: no history there yet; add a run with `fmbench history {store} --add RESULTS_DIR`")
    found = [Commit(machine, commit, str(rs.runs["started_at"].min()), rs) for (machine, commit), rs in _groups(store)]
    return sorted(found, key=lambda c: (c.machine, c.started_at))


def _groups(store: Path) -> list[tuple[tuple[str, str], ResultSet]]:
    """The store's rows through the validating loader, one result set per (machine, commit)."""
    return resultset.load_groups(store, lambda runs: [machine_of(runs), runs["commit"].astype(str)])


def steps(line: list[Commit], noise_sd: dict[str, float] | None = None) -> list[Step]:
    """Each commit of one machine's line checked against the one before it, as the gate checks a change. noise_sd:
    the run-to-run noise per test measured by a reference's repeats; one run against one run takes floors of
    sd * sqrt(2) from it (fmbench.gate.noise.floors_of), as the gate takes its own."""
    found = []
    floors = noise.floors_of(noise_sd, reference_repeats=1)
    for before, after in zip(line, line[1:]):
        try:
            _, rows = verdicts.check(after.rs, ref_io.build(before.rs.without_failed()), floors)
        except RegressError as exc:  # another profile or budget set: nothing to compare
            found.append(Step(after.machine, after.commit, before.commit, "(not comparable)", None, str(exc)))
            continue
        for name, cell, test in rows:
            if verdicts.verdict(cell, test) != "REGRESSION":
                continue
            drop = -test.difference.mean * 100 if test.rejected and test.difference is not None else None
            found.append(
                Step(
                    after.machine,
                    after.commit,
                    before.commit,
                    name,
                    drop,
                    verdicts.message(name, cell, test),
                )
            )
    return found


def trend(line: list[Commit]) -> pd.DataFrame:
    """Per commit and cell: mean test accuracy and mean wall seconds over the finished seeds, and how many."""
    rows = []
    for index, commit in enumerate(line):
        for tuner, budget in commit.rs.cells():
            ok = commit.rs.cell_runs(tuner, budget)
            ok = ok[~ok["failed"]]
            rows.append(
                {
                    "index": index,
                    "commit": commit.label,
                    "tuner": tuner,
                    "budget": budget,
                    "cell": evidence.cell_name(tuner, budget),
                    "test_accuracy": float(ok["test_accuracy"].mean()) if len(ok) else np.nan,
                    "wall_seconds": float(ok["wall_seconds"].mean()) if len(ok) else np.nan,
                    "seeds": len(ok),
                }
            )
    return pd.DataFrame(rows)


def _plot(machine: str, line: list[Commit], points: pd.DataFrame, found: list[Step], path: Path) -> None:
    budgets = sorted(set(points["budget"]) - {"none"}) or ["none"]
    fig, axes = plots.plt.subplots(
        2,
        len(budgets),
        figsize=(plots.PANEL_WIDTH * len(budgets) + 0.6, 6.6),
        sharex=True,
        sharey="row",
        squeeze=False,
        layout="constrained",
    )
    stepped = {(s.commit, s.cell) for s in found}
    labels = [c.label for c in line]
    shown = []
    for column, budget in enumerate(budgets):
        top, bottom = axes[0][column], axes[1][column]
        chosen = points[(points["budget"] == budget) | (points["tuner"] == BASELINE)]
        for tuner, cell_budget in cell_order(zip(chosen["tuner"], chosen["budget"])):
            series = chosen[(chosen["tuner"] == tuner) & (chosen["budget"] == cell_budget)].sort_values("index")
            colour = plots.tuner_colour(tuner)
            top.plot(series["index"], series["test_accuracy"], marker="o", color=colour, linewidth=1.8)
            bottom.plot(series["index"], series["wall_seconds"], marker="o", color=colour, linewidth=1.2)
            for row in series.itertuples():
                if (line[row.index].commit, row.cell) in stepped:
                    top.plot(row.index, row.test_accuracy, "v", color="red", markersize=11, zorder=4)
            shown.append(tuner)
        top.set_title("baseline" if budget == "none" else f"budget {budget} (and the baseline)")
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
        bottom.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        bottom.set_xlabel("commit, in the order they ran")
    axes[0][0].set_ylabel("mean test accuracy over seeds")
    axes[1][0].set_ylabel("mean wall seconds per run")
    fig.suptitle(f"History on {machine}", fontsize=11)
    extra = [
        (
            Line2D([], [], marker="v", color="red", linestyle=""),
            "step down: the gate fails it against the commit before",
        )
    ]
    plots.legend(fig, list(dict.fromkeys(shown)), extra, len(budgets))
    plots.save(fig, path)


def render(store: Path, out: Path, noise_from: Path | None = None) -> tuple[str, list[Step]]:
    """Write the markdown (out) and one PNG per machine beside it; return the markdown and every step found.
    noise_from: a reference whose repeats measured the noise the steps are judged with."""
    every = commits(store)
    noise_sd = ref_io.load(noise_from).get("noise_sd") if noise_from else None
    if noise_from and not noise_sd:
        raise RegressError(
            f"{noise_from}: a single-run reference measured no noise; name one made by `fmbench calibrate reference`"
        )
    floors_text = (
        f" Each step's tests take as least spread the noise measured by the repeats of `{noise_from}`."
        if noise_sd
        else " No measured noise was named (`--noise-from`): each step's tests take one image as least spread."
    )
    lines = [
        f"# fmbench history: {store}",
        "",
        "Each cell's mean test accuracy (and mean wall seconds) over its finished seeds, per commit, in the order the "
        "runs were made. A step down is a cell the gate fails when the commit is checked against the one before it "
        "(`fmbench check`, the earlier commit as the reference). Rebuild with `fmbench history "
        f"{store} --out {out}" + (f" --noise-from {noise_from}" if noise_from else "") + "`." + floors_text,
        "",
    ]
    all_steps = []
    for machine in dict.fromkeys(c.machine for c in every):
        line = [c for c in every if c.machine == machine]
        points, found = trend(line), steps(line, noise_sd)
        all_steps += found
        png = out.with_name(f"{out.stem}-{_slug(machine)}.png")
        _plot(machine, line, points, found, png)
        header = ["cell", *(f"{c.label}" for c in line)]
        rows = []
        for name in dict.fromkeys(points.sort_values(["index"])["cell"]):
            own = points[points["cell"] == name].set_index("index")
            rows.append(
                [name]
                + [
                    f"{own.loc[i, 'test_accuracy']:.4f} ({own.loc[i, 'wall_seconds']:.0f} s)" if i in own.index else "–"
                    for i in range(len(line))
                ]
            )
        lines += [
            f"## {machine}",
            "",
            f"{len(line)} commit(s): " + ", ".join(f"{c.label} ({c.started_at[:16]}Z)" for c in line),
            "",
            f"![History on {machine}]({png.name})",
            "",
            table(rows, header),
            "",
            "Steps down:" if found else "Steps down: none; no commit fails the gate against the one before it.",
            "",
            *(f"- **{_label(s.commit)}** (against {_label(s.before)}): {s.why}" for s in found),
            "",
        ]
    text = "\n".join(lines)
    atomic.write_text(out, text)
    return text, all_steps


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text.lower()).strip("-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", type=Path, metavar="STORE", help="history folder, e.g. results/history/smoke-gate")
    parser.add_argument(
        "--add",
        type=Path,
        nargs="+",
        metavar="RESULTS_DIR",
        help="first append this run (one machine, one commit; its shard folders together) to the store",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="markdown to write (default STORE/history.md); PNGs go beside it"
    )
    parser.add_argument(
        "--noise-from",
        type=Path,
        metavar="REFERENCE",
        help="judge steps with the noise this reference's repeats measured, as the gate does (e.g. "
        "results/reference/gate.json)",
    )


def command(args: argparse.Namespace) -> int:
    if args.add:
        added = add(args.store, args.add)
        print(f"added {added.label} on {added.machine} ({len(added.rs.runs)} runs) to {args.store}")
    out = args.out or args.store / "history.md"
    _, found = render(args.store, out, args.noise_from)
    print(f"{out}: {len(found)} step(s) down" + "".join(f"\n  {s.commit}: {s.why}" for s in found))
    return 0
