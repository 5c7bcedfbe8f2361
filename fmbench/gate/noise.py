"""The noise model file (results/noise/<profile>.json): real runs of unchanged code judged against a reference,
and the spreads they measured, which the gate's tests take as the least spread a test may assume (`floors`).

`fmbench calibrate build` writes it (fmbench.gate.calibrate); `fmbench check --noise` and the calibration read it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fmbench.gate import RegressError, decision

FORMAT = "fmbench-noise"
VERSION = 2


def units(run: dict) -> list[decision.Unit]:
    """A real run's units as differences (reference 0): the gate's tests see nothing else."""
    return [
        decision.Unit(
            u["cell"], int(u["seed"]), bool(u["time_limited"]), u["measure"], 0.0, u["difference"], u["key"], u["step"]
        )
        for u in run["units"]
    ]


def floors(runs: list[list[decision.Unit]]) -> dict[str, float]:
    """The spread the gate's t-tests estimate, measured within each real run and pooled over the runs: per kind of
    unit, the spread of a cell's differences over its seeds; per pooled test, the spread of its per-seed means."""
    squares: dict[str, float] = {}
    counts: dict[str, int] = {}

    def add(name: str, values) -> None:
        values = np.asarray(values, dtype=float)
        if len(values) >= 2:
            squares[name] = squares.get(name, 0.0) + float(((values - values.mean()) ** 2).sum())
            counts[name] = counts.get(name, 0) + len(values) - 1

    for run in runs:
        for kind in decision.KINDS:
            for cell in dict.fromkeys(u.cell for u in run):
                add(kind, [u.current - u.reference for u in run if u.cell == cell and decision.kind(u) == kind])
        for name, idx, _ in decision.tests(run):
            if name in decision.POOLED:
                chosen = [run[i] for i in idx]
                add(
                    name,
                    decision.by_seed(np.array([[u.current - u.reference for u in chosen]]), [u.seed for u in chosen])[
                        0
                    ],
                )
    return {name: round(float(np.sqrt(squares[name] / counts[name])), 6) for name in squares if counts[name]}


def load(path: Path) -> dict:
    path = Path(path)
    try:
        model = json.loads(path.read_text())
        if model.get("format") != FORMAT or model.get("version") != VERSION:
            raise ValueError(f"not an {FORMAT} version {VERSION} file")
        {str(k): float(v) for k, v in model["floors"].items()}
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
