"""The reference a check compares against: per cell and seed, what the run did and what it reached.

It keeps, per run, the test accuracy, the work done (trials, search epochs) and the trials in start order
(a digest of the hyperparameters, epochs, validation accuracy; not the last trial of a run the deadline stopped,
which it may have cut mid-epoch), so a time-limited cell can be compared at a matched amount of work on a machine
of another speed. A reference may be the mean of R repeats of its matrix (`repeats`; made by
fmbench.gate.repeats): then each test accuracy is the repeats' mean (`test_accuracies` lists
them; the rest of a record is the first repeat's), and `noise_sd` holds the run-to-run noise per test of the gate
they measured.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

from fmbench import atomic, resultset
from fmbench.gate import RegressError
from fmbench.registry import BASELINES
from fmbench.resultset import ResultSet

FORMAT = "fmbench-reference"
VERSION = 2
LIBRARY_COLUMNS = {
    "python": "python_version",
    "tensorflow": "tensorflow_version",
    "keras": "keras_version",
    "keras-tuner": "keras_tuner_version",
}
MACHINE_KEYS = ("cpu_model", "gpu_model", "hostname")


def digest(hyperparameters: str) -> str:
    """A short name for one set of hyperparameters (JSON text with sorted keys)."""
    return hashlib.sha1(hyperparameters.encode()).hexdigest()[:10]


def run_record(rs: ResultSet, run) -> dict:
    """One run as the reference keeps it; `run` is a row (namedtuple) of rs.runs."""
    trials = rs.run_trials(run.run_id)
    done = trials[trials["status"] == "COMPLETED"]
    if run.stopped_by == "time" and len(done):
        done = done.iloc[:-1]  # the deadline may have cut the last trial mid-epoch: not a full trial's work
    return {
        "test_accuracy": float(run.test_accuracy),
        "trials_completed": int(run.trials_completed),
        "search_epochs": int(run.search_epochs),
        "model": digest(run.best_hyperparameters or "{}"),
        "trials": [
            [digest(t.hyperparameters or "{}"), int(t.epochs), float(t.val_accuracy)] for t in done.itertuples()
        ],
    }


def _single(frame, column: str):
    values = frame[column].dropna().unique()
    if len(values) > 1:
        raise RegressError(
            f"the results mix {column} values {', '.join(map(str, sorted(values)))}; keep one configuration per check"
        )
    if not len(values):
        return None
    value = values[0]
    return (
        int(value)
        if isinstance(value, float) and value.is_integer()
        else value.item()
        if hasattr(value, "item")
        else value
    )


def _joined(frame, column: str) -> str:
    return ", ".join(sorted(frame[column].dropna().astype(str).unique())) or "unknown"


def describe(rs: ResultSet) -> dict:
    """The configuration, libraries and machine of a result set, in the reference's shape."""
    frame = rs.runs
    return {
        "profile": _single(frame, "profile"),
        "data": {
            "train": _single(frame, "train_size"),
            "val": _single(frame, "val_size"),
            "test": _single(frame, "test_size"),
        },
        "epochs": _single(frame, "epochs"),
        "batch_size": _single(frame, "batch_size"),
        "budgets": sorted(set(frame.loc[~frame.tuner.isin(BASELINES), "budget"])),
        "seeds": sorted(int(s) for s in frame["seed"].unique()),
        "libraries": {name: _joined(frame, column) for name, column in LIBRARY_COLUMNS.items()},
        "machine": {key: _joined(frame, key) for key in MACHINE_KEYS},
        "commit": _joined(frame, "commit"),
        "backend": _single(frame, "keras_backend"),  # one per result set: resultset.load refuses a mix
        "trainer": _single(frame, "trainer"),  # likewise: trained here, or replayed from a table
    }


def build(rs: ResultSet) -> dict:
    """A reference from clean results: configuration, environment, and per cell and seed the run's record."""
    if len(rs.failed):
        failed = [f"{r.tuner} {r.budget} seed {int(r.seed)}" for r in rs.failed.itertuples()]
        raise RegressError(f"cannot record a reference from failed runs ({', '.join(failed)}); rerun them first")
    reference = {
        "format": FORMAT,
        "version": VERSION,
        **describe(rs),
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cells": [],
    }
    for tuner, budget in rs.cells():
        group = rs.cell_runs(tuner, budget)
        time_limited = bool(group["max_seconds"].notna().any())
        reference["cells"].append(
            {
                "tuner": tuner,
                "budget": budget,
                "time_limited": time_limited,
                "runs": {str(int(r.seed)): run_record(rs, r) for r in group.itertuples()},
            }
        )
    return reference


def write(path: Path, reference: dict) -> None:
    """Write through a temporary file and a rename: a reader never sees half a reference."""
    atomic.write_text(Path(path), json.dumps(reference, indent=1, sort_keys=False) + "\n")


def load(path: Path) -> dict:
    """Read and validate a reference; anything wrong is a RegressError naming the file and the fix."""
    path = Path(path)
    fix = "regenerate it with --update-reference"
    if not path.is_file():
        raise RegressError(
            f"{path}: no such reference; create it with `python -m fmbench check RESULTS --reference {path} "
            "--update-reference`"
        )
    try:
        reference = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegressError(f"{path}: not valid JSON ({str(exc).splitlines()[0]}); {fix}") from None
    if not isinstance(reference, dict) or reference.get("format") != FORMAT:
        raise RegressError(f"{path}: not an fmbench reference (format must be {FORMAT!r}); {fix}")
    if reference.get("version") != VERSION:
        raise RegressError(
            f"{path}: reference version {reference.get('version')!r}, this fmbench reads version {VERSION}; {fix}"
        )
    try:
        for key in ("profile", "epochs", "batch_size", "budgets"):
            reference[key]  # noqa: B018 - presence check
        for key in ("data", "libraries", "machine"):
            if not isinstance(reference[key], dict):
                raise TypeError(f"{key} must be an object")
        if int(reference.get("repeats", 1)) < 1:
            raise ValueError("repeats must be 1 or more")
        {str(name): float(sd) for name, sd in (reference.get("noise_sd") or {}).items()}
        for cell in reference["cells"]:
            str(cell["tuner"]), str(cell["budget"]), bool(cell["time_limited"])
            if not cell["runs"]:
                raise ValueError("a cell has no runs")
            for seed, run in cell["runs"].items():
                int(seed), int(run["trials_completed"]), int(run["search_epochs"]), str(run["model"])
                if math.isnan(float(run["test_accuracy"])):
                    raise ValueError(f"seed {seed} has no test accuracy")
                for trial in run["trials"]:
                    str(trial[0]), int(trial[1]), float(trial[2])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise RegressError(f"{path}: malformed reference ({type(exc).__name__}: {exc}); {fix}") from None
    return reference


SEEDS_HELP = (
    "judge only these of the reference's seeds, a comma list or ranges (e.g. 1-100): a gate tier that runs fewer "
    "seeds than its reference (CI's replay tier)"
)


def restrict(reference: dict, seeds: tuple[int, ...]) -> dict:
    """The reference as if it had run only these seeds: a gate tier that runs a subset of its reference's seeds (CI's
    replay tier) is judged, and calibrated, on them alone, so the seeds it left out are not missing."""
    known = {int(seed) for cell in reference["cells"] for seed in cell["runs"]}
    absent = sorted(set(seeds) - known)
    if absent:
        raise RegressError(
            f"seed(s) {', '.join(map(str, absent))} not in the reference; choose --seeds among its {len(known)} "
            f"seeds ({min(known)} to {max(known)})"
        )
    kept = {str(seed) for seed in seeds}
    cells = [{**cell, "runs": {s: run for s, run in cell["runs"].items() if s in kept}} for cell in reference["cells"]]
    return {**reference, "seeds": sorted(seeds), "cells": [cell for cell in cells if cell["runs"]]}


def config(description: dict) -> dict:
    data = description["data"]
    return {
        "profile": description["profile"],
        "train": data.get("train"),
        "val": data.get("val"),
        "test": data.get("test"),
        "epochs": description["epochs"],
        "batch_size": description["batch_size"],
        # A reference made before rows named their backend was made on TensorFlow.
        "backend": description.get("backend") or resultset.UNNAMED_BACKEND,
        # A reference made before rows named their trainer was trained.
        "trainer": description.get("trainer") or "keras",
    }


def config_text(config: dict, budgets) -> str:
    return (
        f"profile {config['profile']} with train={config['train']}, val={config['val']}, test={config['test']}, "
        f"epochs={config['epochs']}, batch_size={config['batch_size']}, budgets {', '.join(budgets) or 'none'}, "
        f"Keras on {config['backend']}, {'replayed from a table' if config['trainer'] == 'replay' else 'trained'}"
    )


def check_comparable(rs: ResultSet, reference: dict) -> list[str]:
    """Raise if results and reference measure different things; return warnings for a different machine or libraries."""
    current = describe(rs)
    mine, theirs = config(current), config(reference)
    new_budgets = set(current["budgets"]) - set(reference["budgets"])
    if mine != theirs or new_budgets:
        raise RegressError(
            f"results are {config_text(mine, current['budgets'])}; reference is "
            f"{config_text(theirs, reference['budgets'])}; compare like with like or --update-reference"
        )
    warnings = []
    for label, key in (("machine", "machine"), ("library versions", "libraries")):
        diffs = [
            f"{name} {current[key][name]!r} (reference {reference[key].get(name)!r})"
            for name in current[key]
            if str(reference[key].get(name)) != current[key][name]
        ]
        if diffs:
            also = (
                "; time-limited cells are compared at matched work where the amount of work differs"
                if key == "machine"
                else ""
            )
            warnings.append(
                f"{label} differ from the reference: {'; '.join(diffs)}; accuracy may move for reasons other "
                f"than this change{also}"
            )
    return warnings
