"""Stored results vs a stored reference: per-cell accuracy drops beyond a noise-aware margin; exit codes; CI output.

A cell is tuner + budget (the baseline is its own cell). A cell regresses when its mean test
accuracy over seeds drops by more than a margin derived from the spread across seeds:

- paired (the same seeds on both sides, n >= 2): margin = t(0.95, n-1) * sd(differences) / sqrt(n);
- unpaired (other seeds): Welch, margin = t(0.95, df) * sqrt(s_r^2/n_r + s_c^2/n_c), df by
  Welch-Satterthwaite; if only one side has >= 2 seeds its sd stands in for both;
- one seed each: no spread to estimate, the floor alone.

The margin is never below the floor (default 0.01 = 1 accuracy point). "Detectable" is the
smallest true drop these seeds catch 80% of the time at that 5% level: (t(0.95) + t(0.80)) * se,
at least the floor.

With few seeds a cell's own test is weak (two seeds give t(0.95, 1) = 6.3), so one more comparison,
"all cells", pools the paired differences of every cell and seed without a time limit: a change that
lowers accuracy across the board fails there even when no single cell can show it. Time-limited cells
stay out of it: how many trials fit in the time depends on the machine's speed and load, noise that
the trial-limited cells (exactly repeatable on one machine) do not have.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats as scipy_stats
from tabulate import tabulate

from fmbench import atomic, results
from fmbench.spec import BASELINE
from fmbench.stats import mean_interval

FORMAT = "fmbench-reference"
VERSION = 1
DEFAULT_FLOOR = 0.01
ALPHA = 0.05  # one-sided
POWER = 0.80
FAILING = ("REGRESSION", "missing")
CONFIG_KEYS = ("profile", "train", "val", "test", "epochs", "batch_size")
LIBRARY_COLUMNS = {"python": "python_version", "tensorflow": "tensorflow_version", "keras": "keras_version", "keras-tuner": "keras_tuner_version"}
MACHINE_KEYS = ("cpu_model", "gpu_model", "hostname")
FOOTNOTE = (
    "Margin: the drop a cell may show before it is called a regression; one-sided 95% t bound of the mean "
    "difference (paired by seed when the seeds match, else Welch), never below the floor of {floor:.2f} points. "
    "Detectable: the smallest true drop these seeds detect with 80% power at that level, (t0.95 + t0.80) x se, "
    "at least the floor. With one seed there is no spread: the floor alone is used. All cells: the same paired test "
    "over every (cell, seed) pair without a time limit, which catches a drop spread over cells that no single cell "
    "can show."
)


class RegressError(ValueError):
    """Bad input to a check (reference or results missing, malformed or not comparable): one line, names the fix."""


@dataclass(frozen=True)
class Comparison:
    """One cell, current vs reference: means, difference, the margin used, what it can detect, and the verdict."""

    tuner: str
    budget: str
    reference_seeds: tuple[int, ...]
    current_seeds: tuple[int, ...]  # seeds with a successful run
    reference_mean: float | None
    current_mean: float | None
    difference: float | None  # current - reference
    margin: float | None
    detectable: float | None
    method: str  # paired / Welch / pooled / floor only / -
    verdict: str  # ok / REGRESSION / improved / missing / new
    failed: tuple[tuple[int, str], ...] = ()  # (seed, error) of failed current runs

    @property
    def cell(self) -> str:
        return cell_name(self.tuner, self.budget)

    @property
    def is_failure(self) -> bool:
        return self.verdict in FAILING

    @property
    def message(self) -> str:
        """One line saying why this cell fails (or how it stands)."""
        if self.verdict == "missing":
            return f"{self.cell}: in the reference but not in the results; run it, or --update-reference if it was dropped on purpose"
        parts = []
        if self.failed:
            parts.append("failed run(s) " + "; ".join(f"seed {s}: {err}" for s, err in self.failed))
        if self.difference is not None:
            parts.append(f"mean test accuracy {self.current_mean:.4f} vs reference {self.reference_mean:.4f} "
                         f"({self.difference * 100:+.2f} points, margin {self.margin * 100:.2f})")
        return f"{self.cell}: " + "; ".join(parts)


ALL_CELLS = "all cells"


def cell_name(tuner: str, budget: str) -> str:
    return tuner if tuner in (BASELINE, ALL_CELLS) else f"{tuner} {budget}"


# --- reading the current results -------------------------------------------------------------

def _clean(runs: pd.DataFrame) -> pd.DataFrame:
    """Normalise types; a later row for the same tuner/budget/seed supersedes an earlier one (a rerun)."""
    if runs.empty:
        raise RegressError("the results hold no runs; run the benchmark first")
    frame = runs.copy()
    frame["budget"] = frame["budget"].astype(object).fillna("none").astype(str)
    frame["error"] = frame["error"].astype(object).fillna("").astype(str)
    frame["test_accuracy"] = pd.to_numeric(frame["test_accuracy"], errors="coerce")
    try:
        frame["seed"] = frame["seed"].astype(int)
    except (TypeError, ValueError):
        raise RegressError("the results have a non-integer seed; the runs.csv is damaged, rerun the benchmark") from None
    # A row without a test accuracy cannot be compared either: it counts as failed for its cell.
    frame["failed"] = results.failed_runs(frame) | frame["test_accuracy"].isna()
    return frame.drop_duplicates(["tuner", "budget", "seed"], keep="last")


def _single(frame: pd.DataFrame, column: str):
    values = frame[column].dropna().unique()
    if len(values) > 1:
        raise RegressError(f"the results mix {column} values {', '.join(map(str, sorted(values)))}; keep one configuration per results directory")
    if not len(values):
        return None
    value = values[0]
    return int(value) if isinstance(value, float) and value.is_integer() else value.item() if hasattr(value, "item") else value


def _joined(frame: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted(frame[column].dropna().astype(str).unique())) or "unknown"


def describe_runs(runs: pd.DataFrame) -> dict:
    """The configuration, libraries and machine of a results table, in the reference's shape."""
    frame = _clean(runs)
    return {
        "profile": _single(frame, "profile"),
        "data": {"train": _single(frame, "train_size"), "val": _single(frame, "val_size"), "test": _single(frame, "test_size")},
        "epochs": _single(frame, "epochs"),
        "batch_size": _single(frame, "batch_size"),
        "budgets": sorted(set(frame.loc[frame.tuner != BASELINE, "budget"])),
        "seeds": sorted(int(s) for s in frame["seed"].unique()),
        "libraries": {name: _joined(frame, column) for name, column in LIBRARY_COLUMNS.items()},
        "machine": {key: _joined(frame, key) for key in MACHINE_KEYS},
        "commit": _joined(frame, "commit"),
    }


def _cells(frame: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    return {(tuner, budget): group for (tuner, budget), group in frame.groupby(["tuner", "budget"], sort=True)}


# --- the reference -----------------------------------------------------------------------------

def build_reference(runs: pd.DataFrame) -> dict:
    """A reference from clean results: configuration, environment, and per cell the per-seed test accuracies."""
    frame = _clean(runs)
    failed = [f"{cell_name(r.tuner, r.budget)} seed {r.seed}" for r in frame.itertuples() if r.failed]
    if failed:
        raise RegressError(f"cannot record a reference from failed runs ({', '.join(failed)}); rerun them first")
    reference = {"format": FORMAT, "version": VERSION, **describe_runs(frame),
                 "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cells": []}
    for (tuner, budget), group in _cells(frame).items():
        accuracies = {str(int(r.seed)): float(r.test_accuracy) for r in group.sort_values("seed").itertuples()}
        summary = mean_interval(accuracies.values())
        reference["cells"].append({"tuner": tuner, "budget": budget, "test_accuracy": accuracies,
                                   "mean": summary.mean, "std": summary.std})
    return reference


def write_reference(path: Path, reference: dict) -> None:
    """Write through a temporary file and a rename: a reader never sees half a reference."""
    atomic.write_text(Path(path), json.dumps(reference, indent=2, sort_keys=False) + "\n")


def load_reference(path: Path) -> dict:
    """Read and validate a reference; anything wrong is a RegressError naming the file and the fix."""
    path = Path(path)
    fix = "regenerate it with --update-reference"
    if not path.is_file():
        raise RegressError(f"{path}: no such reference; create it with `python -m fmbench check RESULTS --reference {path} --update-reference`")
    try:
        reference = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegressError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); {fix}") from None
    if not isinstance(reference, dict) or reference.get("format") != FORMAT:
        raise RegressError(f"{path}: not an fmbench reference (format must be {FORMAT!r}); {fix}")
    if reference.get("version") != VERSION:
        raise RegressError(f"{path}: reference version {reference.get('version')!r}, this fmbench reads version {VERSION}; {fix}")
    try:
        for key in ("profile", "epochs", "batch_size", "budgets"):
            reference[key]  # noqa: B018 - presence check
        for key in ("data", "libraries", "machine"):
            if not isinstance(reference[key], dict):
                raise TypeError(f"{key} must be an object")
        for cell in reference["cells"]:
            accuracies = {int(seed): float(acc) for seed, acc in cell["test_accuracy"].items()}
            if not accuracies or any(math.isnan(a) for a in accuracies.values()):
                raise ValueError("a cell has no accuracies")
            str(cell["tuner"]), str(cell["budget"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RegressError(f"{path}: malformed reference ({type(exc).__name__}: {exc}); {fix}") from None
    return reference


def _config(description: dict) -> dict:
    data = description["data"]
    return {"profile": description["profile"], "train": data.get("train"), "val": data.get("val"),
            "test": data.get("test"), "epochs": description["epochs"], "batch_size": description["batch_size"]}


def _config_text(config: dict, budgets) -> str:
    return (f"profile {config['profile']} with train={config['train']}, val={config['val']}, test={config['test']}, "
            f"epochs={config['epochs']}, batch_size={config['batch_size']}, budgets {', '.join(budgets) or 'none'}")


def check_comparable(runs: pd.DataFrame, reference: dict) -> list[str]:
    """Raise if results and reference measure different things; return warnings for a different machine or libraries."""
    current = describe_runs(runs)
    mine, theirs = _config(current), _config(reference)
    new_budgets = set(current["budgets"]) - set(reference["budgets"])
    if mine != theirs or new_budgets:
        raise RegressError(f"results are {_config_text(mine, current['budgets'])}; reference is "
                           f"{_config_text(theirs, reference['budgets'])}; compare like with like or --update-reference")
    warnings = []
    for label, key in (("machine", "machine"), ("library versions", "libraries")):
        diffs = [f"{name} {current[key][name]!r} (reference {reference[key].get(name)!r})"
                 for name in current[key] if str(reference[key].get(name)) != current[key][name]]
        if diffs:
            timed = [b for b in current["budgets"] if "time" in b] if key == "machine" else []
            also = f"; time budgets ({', '.join(timed)}) buy a different amount of search there" if timed else ""
            warnings.append(f"{label} differ from the reference: {'; '.join(diffs)}; accuracy may move for reasons other than this change{also}")
    return warnings


# --- the comparison ------------------------------------------------------------------------------

def _t(quantile: float, df: float) -> float:
    return float(scipy_stats.t.ppf(quantile, df))


def noise_margin(reference: dict[int, float], current: dict[int, float], floor: float) -> tuple[float, float, str]:
    """(margin, detectable drop, method) for a drop of mean(current) below mean(reference); see the module docstring."""
    ref, cur = list(reference.values()), list(current.values())
    if set(reference) == set(current) and len(ref) >= 2:
        diffs = [current[s] - reference[s] for s in sorted(reference)]
        n, df, se, method = len(diffs), len(diffs) - 1, mean_interval(diffs).std / math.sqrt(len(diffs)), "paired"
    else:
        s_r = mean_interval(ref).std if len(ref) >= 2 else None
        s_c = mean_interval(cur).std if len(cur) >= 2 else None
        if s_r is None and s_c is None:
            return floor, floor, "floor only (one seed, no spread)"
        if s_r is not None and s_c is not None:
            a, b = s_r**2 / len(ref), s_c**2 / len(cur)
            se, method = math.sqrt(a + b), "Welch"
            df = (a + b) ** 2 / (a**2 / (len(ref) - 1) + b**2 / (len(cur) - 1)) if a + b > 0 else len(ref) + len(cur) - 2
        else:  # one side has a single seed: borrow the other side's spread for both
            s, df = (s_r, len(ref) - 1) if s_r is not None else (s_c, len(cur) - 1)
            se, method = s * math.sqrt(1 / len(ref) + 1 / len(cur)), "pooled"
    t_alpha = _t(1 - ALPHA, df)
    return max(t_alpha * se, floor), max((t_alpha + _t(POWER, df)) * se, floor), method


def compare(runs: pd.DataFrame, reference: dict, floor: float = DEFAULT_FLOOR) -> list[Comparison]:
    """Every cell of the reference and of the results, compared (results are not checked for comparability here)."""
    current = _cells(_clean(runs))
    stored = {(c["tuner"], c["budget"]): {int(s): float(a) for s, a in c["test_accuracy"].items()} for c in reference["cells"]}
    comparisons = []
    pairs: list[tuple[float, float]] = []  # (reference, current) of every cell and seed that both sides ran
    for key in sorted(set(current) | set(stored), key=lambda k: (k[0] != BASELINE, k)):
        ref = stored.get(key, {})
        group = current.get(key)
        rows = list(group.sort_values("seed").itertuples()) if group is not None else []
        failed = tuple((int(r.seed), r.error or "no test accuracy") for r in rows if r.failed)
        cur = {int(r.seed): float(r.test_accuracy) for r in rows if not r.failed}
        ref_mean = mean_interval(ref.values()).mean if ref else None
        cur_mean = mean_interval(cur.values()).mean if cur else None
        margin = detectable = difference = None
        method = "-"
        if not ref:
            verdict = "new"
        elif group is None:
            verdict = "missing"
        else:
            if cur:
                margin, detectable, method = noise_margin(ref, cur, floor)
                difference = cur_mean - ref_mean
                if group.max_seconds.isna().all():
                    pairs.extend((ref[seed], cur[seed]) for seed in sorted(set(ref) & set(cur)))
            if failed or (difference is not None and difference < -margin):
                verdict = "REGRESSION"
            elif difference is not None and difference > margin:
                verdict = "improved"
            else:
                verdict = "ok"
        comparisons.append(Comparison(key[0], key[1], tuple(sorted(ref)), tuple(sorted(cur)), ref_mean, cur_mean,
                                      difference, margin, detectable, method, verdict, failed))
    if len(pairs) >= 2:
        comparisons.append(_all_cells(pairs, floor))
    return comparisons


def _all_cells(pairs: list[tuple[float, float]], floor: float) -> Comparison:
    """Every (cell, seed) pair at once: a paired test with as many pairs as the profile has runs."""
    reference = {i: ref for i, (ref, _) in enumerate(pairs)}
    current = {i: cur for i, (_, cur) in enumerate(pairs)}
    margin, detectable, _ = noise_margin(reference, current, floor)
    ref_mean, cur_mean = mean_interval(reference.values()).mean, mean_interval(current.values()).mean
    difference = cur_mean - ref_mean
    verdict = "REGRESSION" if difference < -margin else "improved" if difference > margin else "ok"
    return Comparison(ALL_CELLS, "", (), (), ref_mean, cur_mean, difference, margin, detectable,
                      f"paired, {len(pairs)} pairs", verdict)


# --- output ----------------------------------------------------------------------------------------

def _seeds_text(c: Comparison) -> str:
    if c.tuner == ALL_CELLS:
        return "cells without time limit x seeds"
    if c.reference_seeds == c.current_seeds or not c.current_seeds:
        text = ",".join(map(str, c.reference_seeds or c.current_seeds))
    else:
        text = f"ref {','.join(map(str, c.reference_seeds))} / now {','.join(map(str, c.current_seeds))}"
    return text + (f" (failed: {','.join(str(s) for s, _ in c.failed)})" if c.failed else "")


def _pts(value: float | None, sign: bool = False) -> str | None:
    return None if value is None else f"{value * 100:{'+' if sign else ''}.2f}"


def render_table(comparisons: list[Comparison]) -> str:
    rows = [[c.cell, _seeds_text(c), None if c.reference_mean is None else f"{c.reference_mean:.4f}",
             None if c.current_mean is None else f"{c.current_mean:.4f}", _pts(c.difference, sign=True),
             _pts(c.margin), _pts(c.detectable), c.method, c.verdict] for c in comparisons]
    headers = ["cell", "seeds", "reference mean", "current mean", "difference (pts)", "margin (pts)",
               "detectable drop (pts)", "test", "verdict"]
    return tabulate(rows, headers, tablefmt="github", missingval="-", disable_numparse=True)


def verdict_line(comparisons: list[Comparison]) -> str:
    failing = [c.cell for c in comparisons if c.is_failure]
    improved = [c.cell for c in comparisons if c.verdict == "improved"]
    if failing:
        return f"Verdict: REGRESSION in {len(failing)} of {len(comparisons)} cells: {', '.join(failing)}"
    extra = f" ({len(improved)} improved: {', '.join(improved)})" if improved else ""
    return f"Verdict: ok, no regression in {len(comparisons)} cells{extra}"


def render_report(comparisons: list[Comparison], warnings: list[str], floor: float) -> str:
    """Warnings, the table, the footnote and the verdict, as markdown (also fine on a terminal)."""
    lines = [f"> **warning:** {w}" for w in warnings]
    lines += ([""] if warnings else []) + [render_table(comparisons), "", FOOTNOTE.format(floor=floor * 100), ""]
    failing = [f"- {c.message}" for c in comparisons if c.is_failure]
    lines += failing + ([""] if failing else []) + [f"**{verdict_line(comparisons)}**"]
    return "\n".join(lines)


def _escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


def annotations(comparisons: list[Comparison], warnings: list[str]) -> list[str]:
    """GitHub Actions workflow commands: one ::error per failing cell, one ::warning per warning."""
    lines = [f"::warning title=fmbench check::{_escape(w)}" for w in warnings]
    lines += [f"::error title={_escape('Accuracy regression: ' + c.cell, True)}::{_escape(c.message)}"
              for c in comparisons if c.is_failure]
    return lines


def export_benchmark_json(runs: pd.DataFrame, path: Path) -> list[dict]:
    """github-action-benchmark `customBiggerIsBetter` entries: mean test accuracy (%) per cell, failed runs left out."""
    frame = _clean(runs)
    entries = []
    for (tuner, budget), group in _cells(frame).items():
        ok = group[~group.failed].sort_values("seed")
        if ok.empty:
            continue
        summary = mean_interval(ok["test_accuracy"])
        entries.append({"name": f"{cell_name(tuner, budget)} test accuracy", "unit": "%", "value": round(summary.mean * 100, 4),
                        "range": f"± {summary.std * 100:.4f}",
                        "extra": f"seeds: {', '.join(map(str, ok['seed']))}; n={summary.n}"})
    atomic.write_text(Path(path), json.dumps(entries, indent=2) + "\n")
    return entries


# --- the command -----------------------------------------------------------------------------------

def _floor(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"floor is a fraction of accuracy in [0, 1), e.g. 0.01 for 1 point; got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="a results directory holding runs.csv, e.g. results/smoke")
    parser.add_argument("--reference", type=Path, required=True, help="the reference JSON, e.g. results/reference/smoke.json")
    parser.add_argument("--update-reference", action="store_true", help="write the reference from these results and exit 0")
    parser.add_argument("--export-json", type=Path, default=None, metavar="FILE",
                        help="also write github-action-benchmark customBiggerIsBetter JSON to FILE")
    parser.add_argument("--floor", type=_floor, default=DEFAULT_FLOOR,
                        help=f"smallest margin, as a fraction of accuracy (default {DEFAULT_FLOOR} = 1 point)")


def command(args: argparse.Namespace) -> int:
    """Exit 1 on a regression or a missing cell, 0 otherwise; bad input raises RegressError (or ResultsError)."""
    runs = results.read_runs(args.results)
    if args.export_json:
        export_benchmark_json(runs, args.export_json)
    if args.update_reference:
        write_reference(args.reference, build_reference(runs))
        print(f"wrote reference {args.reference} from {args.results}")
        return 0
    reference = load_reference(args.reference)
    warnings = check_comparable(runs, reference)
    comparisons = compare(runs, reference, args.floor)
    report = render_report(comparisons, warnings, args.floor)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        print("\n".join(annotations(comparisons, warnings)))
    print(report)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as handle:
            handle.write(f"## fmbench check: {args.results} vs {args.reference}\n\n{report}\n\n")
    return 1 if any(c.is_failure for c in comparisons) else 0
