"""Measured noise: the spreads harmless runs show per test of the gate, which its tests take as the least spread
they may assume (`floors`), and the noise model file that holds such runs.

Two sources. A reference made of R repeats of its matrix (`fmbench calibrate reference`) carries the run-to-run
noise its repeats measured (`noise_sd`, `repeat_sd`), and a check against it takes floors from that (`floors_of`):
nothing the check is later judged on shaped them. The noise model file (results/noise/<profile>.json, `fmbench
calibrate build`) holds real runs of unchanged code judged against a reference: for a reference with measured noise
they are out-of-sample runs that count the gate's false alarms; for a single-run reference (no noise of its own) the
floors are measured within those runs (`floors`), in sample. `fmbench check --noise` and the calibration read it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fmbench.gate import RegressError, decision
from fmbench.gate.evidence import Unit

FORMAT = "fmbench-noise"
VERSION = 3  # 3: floors per test of the family (tuner rows), and where they were measured


def units(run: dict) -> list[Unit]:
    """A real run's units as differences (reference 0): the gate's tests see nothing else."""
    return [
        Unit(
            u["cell"], int(u["seed"]), bool(u["time_limited"]), u["measure"], 0.0, u["difference"], u["key"], u["step"]
        )
        for u in run["units"]
    ]


def _per_seed_means(run: list[Unit]) -> dict[str, dict[int, float]]:
    """Per test of the gate's family (decided or shown), each seed's mean difference over its distinct units."""
    out = {}
    for name, idx, _ in decision.tests(run):
        chosen = [run[i] for i in idx]
        seeds = sorted({u.seed for u in chosen})
        means = decision.by_seed(np.array([[u.current - u.reference for u in chosen]]), [u.seed for u in chosen])[0]
        out[name] = dict(zip(seeds, map(float, means)))
    return out


def _pooled_sd(groups: dict[str, list[list[float]]]) -> dict[str, float]:
    """Per test, the spread within each group of values, pooled over the groups (each group's own mean removed)."""
    out = {}
    for name, found in groups.items():
        squares = sum(float(((np.asarray(g) - np.mean(g)) ** 2).sum()) for g in found if len(g) >= 2)
        df = sum(len(g) - 1 for g in found if len(g) >= 2)
        if df:
            out[name] = round(float(np.sqrt(squares / df)), 6)
    return out


def floors(runs: list[list[Unit]]) -> dict[str, float]:
    """The spread each test's t-test estimates, measured within each real run (over its seeds) and pooled over the
    runs: what harmless runs judged against a reference showed, per test."""
    groups: dict[str, list[list[float]]] = {}
    for run in runs:
        for name, means in _per_seed_means(run).items():
            groups.setdefault(name, []).append(list(means.values()))
    return _pooled_sd(groups)


def repeat_sd(runs: list[list[Unit]]) -> dict[str, float]:
    """The run-to-run noise per test, from repeats of the same matrix (same seeds, harmless changes between them)
    judged against their own mean: per test, the spread of a seed's mean difference across the repeats, pooled over
    the seeds. One run's difference from a reference that is the mean of R such runs spreads by sd * sqrt(1 + 1/R)
    (`floors_of`)."""
    groups: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        for name, means in _per_seed_means(run).items():
            for seed, value in means.items():
                groups.setdefault(name, {}).setdefault(seed, []).append(value)
    return _pooled_sd({name: list(by_seed.values()) for name, by_seed in groups.items()})


def floors_of(noise_sd: dict[str, float] | None, reference_repeats: int, current_repeats: int = 1) -> dict | None:
    """The floors of a check from measured run-to-run noise: a mean of `current_repeats` runs minus a reference's
    mean of `reference_repeats` runs spreads by sd * sqrt(1/current_repeats + 1/reference_repeats). None where no
    noise was measured (a single-run reference)."""
    if not noise_sd:
        return None
    scale = np.sqrt(1 / current_repeats + 1 / reference_repeats)
    return {name: round(float(value * scale), 6) for name, value in noise_sd.items()}


def load(path: Path) -> dict:
    path = Path(path)
    try:
        model = json.loads(path.read_text())
        if model.get("format") != FORMAT or model.get("version") != VERSION:
            raise ValueError(f"not an {FORMAT} version {VERSION} file")
        {str(k): float(v) for k, v in model["floors"].items()}
        str(model["floors_from"])
        for run in model["runs"]:
            list(run["failing"])
            for unit in run["units"]:
                str(unit["cell"]), int(unit["seed"]), float(unit["difference"]), float(unit["step"]), str(unit["key"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegressError(
            f"{path}: not a usable noise model ({exc}); build it with `fmbench calibrate build RUN_DIR... "
            "--reference FILE --out FILE`"
        ) from None
    return model


def floors_for(model: dict, reference: dict, path: Path) -> dict[str, float]:
    """The model's floors, if it was measured against this reference (same profile and reference commit)."""
    if (model["profile"], model["reference_commit"]) != (reference["profile"], reference["commit"]):
        raise RegressError(
            f"{path} was measured against a {model['profile']} reference of commit {model['reference_commit']}, "
            f"not this {reference['profile']} one of {reference['commit']}: rebuild it with `fmbench calibrate "
            "build RUN_DIR... --reference FILE --out FILE`"
        )
    return {str(k): float(v) for k, v in model["floors"].items()}
