"""The gate's false-alarm rate and power, measured by simulation on a noise model built from real repeated runs.

`fmbench calibrate build RUN_DIR...` takes complete runs of one profile made by unchanged code under varied
conditions (thread counts, oneDNN on/off, machines, GPU nondeterminism) and records every difference the gate
would see between two of them: per cell and seed, its measure and current - reference. That file is the noise
model (results/noise/<profile>.json); it holds measurements only, nothing typed in.

`fmbench calibrate check REFERENCE --noise FILE` simulates gate runs of unchanged code: each unit of the reference
gets a difference drawn from the observed differences of its kind (cells with or without a time limit), units
that are the same model get the same draw, and decision.decide() judges the run. The share of runs with any failing
test is the family-wise false-alarm rate. The same runs with every unit lowered by a drop give the power, and the
smallest drop caught in >= 80% of runs is reported. It also judges every real pair of runs in the noise model.
Building the noise model, simulating, rendering and the command stay together: each is a few short functions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
from pathlib import Path

import numpy as np

from fmbench import atomic, resultset
from fmbench.gate import RegressError, decision
from fmbench.gate import reference as ref_io

FORMAT = "fmbench-noise"
VERSION = 1
TARGET_POWER = 0.80
MAX_FALSE_ALARMS = 0.05
DROPS = np.round(np.arange(0.001, 0.1001, 0.001), 3)  # 0.1 to 10 points, the resolution of a 1,000-image test set


def _kind(time_limited: bool) -> str:
    return "time-limited" if time_limited else "untimed"


def build(run_dirs: list[Path]) -> dict:
    """The noise model: every unit difference between every pair of these runs, and what each run was."""
    if len(run_dirs) < 2:
        raise RegressError("a noise model needs at least two runs of unchanged code; name two or more results folders")
    sets = [resultset.load(d) for d in run_dirs]
    references = [ref_io.build(rs) for rs in sets]
    config = {ref_io.config_text(ref_io.config(r), r["budgets"]) for r in references}
    if len(config) > 1:
        raise RegressError(
            f"the runs measure different things ({' | '.join(sorted(config))}); build one noise model per profile"
        )
    pairs = []
    for (i, a), (j, _) in itertools.combinations(enumerate(references), 2):
        _, units = decision.evidence(sets[j], a)
        pairs.append(
            {
                "reference": str(run_dirs[i]),
                "current": str(run_dirs[j]),
                "units": [
                    {
                        "cell": u.cell,
                        "seed": u.seed,
                        "measure": u.measure,
                        "kind": _kind(u.time_limited),
                        "difference": round(u.current - u.reference, 6),
                        "key": u.key,
                        "step": u.step,
                    }
                    for u in units
                ],
            }
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "profile": references[0]["profile"],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": [
            {
                "folder": str(d),
                "machine": r["machine"],
                "libraries": r["libraries"],
                "commit": r["commit"],
                "seeds": r["seeds"],
            }
            for d, r in zip(run_dirs, references)
        ],
        "pairs": pairs,
    }


def load(path: Path) -> dict:
    path = Path(path)
    try:
        model = json.loads(path.read_text())
        if model.get("format") != FORMAT or model.get("version") != VERSION:
            raise ValueError(f"not an {FORMAT} version {VERSION} file")
        for pair in model["pairs"]:
            for unit in pair["units"]:
                str(unit["kind"]), float(unit["difference"]), float(unit["step"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RegressError(
            f"{path}: not a usable noise model ({exc}); build it with `python -m fmbench calibrate build RUN_DIR...`"
        ) from None
    return model


def pools(model: dict) -> dict[str, np.ndarray]:
    """Observed differences by kind, each pair counted in both directions (either run could be the reference)."""
    out: dict[str, list[float]] = {}
    for pair in model["pairs"]:
        for unit in pair["units"]:
            out.setdefault(unit["kind"], []).extend([unit["difference"], -unit["difference"]])
    return {kind: np.asarray(values) for kind, values in out.items()}


def reference_units(reference: dict) -> list[decision.Unit]:
    """The reference against itself: every cell and seed as a unit of difference 0, keyed by the model it retrains."""
    return [
        decision.Unit(
            decision.cell_name(c["tuner"], c["budget"]),
            int(seed),
            bool(c["time_limited"]),
            "test",
            run["test_accuracy"],
            run["test_accuracy"],
            f"test|{seed}|{run['model']}",
            1 / reference["data"]["test"],
        )
        for c in reference["cells"]
        for seed, run in c["runs"].items()
    ]


def simulate(units: list[decision.Unit], draw, drop: float, runs: int, rng: np.random.Generator) -> float:
    """Share of `runs` simulated gate runs that fail when every unit drops by `drop` on top of the noise."""
    keys = sorted({u.key for u in units})
    # The same model gets the same noise; a model a trial-limited cell also retrains has that cell's (numeric) noise.
    first = [min((u for u in units if u.key == k), key=lambda u: u.time_limited) for k in keys]
    noise = draw(first, runs, rng)
    column = {k: j for j, k in enumerate(keys)}
    current = np.array([u.reference for u in units]) + noise[:, [column[u.key] for u in units]] - drop
    return float(decision.failures(units, current).mean())


def calibrate(reference: dict, draw, runs: int, seed: int = 0) -> dict:
    """False-alarm rate at no drop, power per drop, and the smallest drop caught with TARGET_POWER."""
    rng = np.random.default_rng(seed)
    units = reference_units(reference)
    false_alarms = simulate(units, draw, 0.0, runs, rng)
    power, smallest = {}, None
    low, high = 0, len(DROPS) - 1  # power grows with the drop: bisect the grid
    while low <= high:
        mid = (low + high) // 2
        power[float(DROPS[mid])] = simulate(units, draw, float(DROPS[mid]), runs, rng)
        if power[float(DROPS[mid])] >= TARGET_POWER:
            smallest, high = float(DROPS[mid]), mid - 1
        else:
            low = mid + 1
    return {
        "runs": runs,
        "units": len(units),
        "distinct": len({u.key for u in units}),
        "false_alarm_rate": false_alarms,
        "smallest_drop": smallest,
        "power": dict(sorted(power.items())),
    }


def empirical_draw(model: dict):
    found = pools(model)

    def draw(units: list[decision.Unit], runs: int, rng: np.random.Generator) -> np.ndarray:
        columns = []
        for unit in units:
            pool = found.get(_kind(unit.time_limited))
            columns.append(np.zeros(runs) if pool is None or not len(pool) else rng.choice(pool, size=runs))
        return np.column_stack(columns)

    return draw, found


def real_pairs(model: dict) -> list[tuple[str, str, bool]]:
    """The gate's verdict on each real pair of runs in the noise model: (reference, current, failed)."""
    out = []
    for pair in model["pairs"]:
        units = [
            decision.Unit(
                u["cell"],
                int(u["seed"]),
                u["kind"] == "time-limited",
                u["measure"],
                0.0,
                float(u["difference"]),
                u["key"],
                u["step"],
            )
            for u in pair["units"]
        ]
        out.append((pair["reference"], pair["current"], any(t.rejected for t in decision.decide(units))))
    return out


def normal_draw(sd: float):
    """Assumed noise instead of measured: N(0, sd) per unit difference, for a machine not at hand (e.g. a GPU)."""

    def draw(units: list[decision.Unit], runs: int, rng: np.random.Generator) -> np.ndarray:
        return np.round(
            rng.normal(0.0, sd, size=(runs, len(units))), 3
        )  # accuracy on 1,000+ images moves in steps of 0.001

    return draw


def render(result: dict, source: str, found: dict[str, np.ndarray] | None, pairs: list) -> str:
    lines = [f"noise: {source}"]
    for kind, pool in sorted((found or {}).items()):
        nonzero = int(np.count_nonzero(pool))
        spread = (
            f"sd {pool.std(ddof=1) * 100:.2f} points"
            if nonzero
            else "unknown: zero spread (every run repeated exactly)"
        )
        lines.append(f"  {kind}: {len(pool) // 2} observed differences, {nonzero // 2} non-zero; {spread}")
    if pairs:
        failed = sum(f for _, _, f in pairs)
        lines.append(f"real pairs of runs judged by the gate: {failed} of {len(pairs)} failed")
    far = result["false_alarm_rate"]
    lines.append(
        f"simulated gate runs of unchanged code: {result['runs']}, {result['units']} units "
        f"({result['distinct']} distinct)"
    )
    lines.append(
        f"family-wise false-alarm rate: {far * 100:.1f}% ({'within' if far <= MAX_FALSE_ALARMS else 'ABOVE'} "
        f"the {MAX_FALSE_ALARMS * 100:.0f}% limit)"
    )
    smallest = result["smallest_drop"]
    if smallest is None:
        lines.append(
            f"smallest across-the-board drop caught with >= {TARGET_POWER:.0%} power: none up to "
            f"{DROPS[-1] * 100:.0f} points"
        )
    else:
        exact = found is not None and not np.count_nonzero(found.get("untimed", [0.0]))
        note = (
            (
                " (the cells without a time limit repeated exactly in every real run: their noise is unknown: "
                "zero spread,"
                " so any drop they all show is caught; for noisier machines see --normal-sd)"
            )
            if exact
            else ""
        )
        lines.append(
            f"smallest across-the-board drop caught with >= {TARGET_POWER:.0%} power: {smallest * 100:.1f} points{note}"
        )
    lines.append(
        "power at the drops tried: " + ", ".join(f"{d * 100:.1f} pts {p:.0%}" for d, p in result["power"].items())
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    build_cmd = commands.add_parser("build", help="a noise model from two or more runs of unchanged code")
    build_cmd.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN_DIR", help="results folders, one complete run each"
    )
    build_cmd.add_argument(
        "--out", type=Path, required=True, help="noise model to write, e.g. results/noise/smoke.json"
    )
    build_cmd.set_defaults(action="build")
    check_cmd = commands.add_parser("check", help="simulate gate runs: false-alarm rate and power")
    check_cmd.add_argument(
        "reference", type=Path, help="the reference the gate checks against, e.g. results/reference/smoke.json"
    )
    source = check_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--noise", type=Path, help="noise model built by `calibrate build`")
    source.add_argument(
        "--normal-sd", type=float, help="assume N(0, SD) per unit difference instead (a fraction: 0.02 = 2 points)"
    )
    check_cmd.add_argument("--runs", type=int, default=1000, help="simulated gate runs per figure (default 1000)")
    check_cmd.add_argument("--json", type=Path, help="also write the figures as JSON")
    check_cmd.set_defaults(action="check")


def command(args: argparse.Namespace) -> int:
    """build: write the model. check: exit 1 when the false-alarm rate is above 5%."""
    if args.action == "build":
        model = build(args.runs)
        atomic.write_text(args.out, json.dumps(model, indent=1) + "\n")
        print(f"wrote {args.out}: {len(model['runs'])} runs, {len(model['pairs'])} pairs")
        return 0
    if args.runs < 1:
        raise RegressError(f"--runs must be >= 1, got {args.runs}")
    reference = ref_io.load(args.reference)
    if args.noise:
        model = load(args.noise)
        if model["profile"] != reference["profile"]:
            raise RegressError(
                f"noise model of profile {model['profile']} for a {reference['profile']} reference; build one "
                "for that profile"
            )
        draw, found = empirical_draw(model)
        pairs, source = real_pairs(model), f"{args.noise} ({len(model['runs'])} real runs)"
    else:
        if not 0 <= args.normal_sd < 1:
            raise RegressError(f"--normal-sd is a fraction of accuracy in [0, 1), e.g. 0.02; got {args.normal_sd}")
        draw, found, pairs, source = (
            normal_draw(args.normal_sd),
            None,
            [],
            f"assumed N(0, {args.normal_sd * 100:g} points) per unit",
        )
    result = calibrate(reference, draw, args.runs)
    print(f"calibration of the gate against {args.reference} (profile {reference['profile']})")
    print(render(result, source, found, pairs))
    if args.json:
        atomic.write_text(
            args.json, json.dumps({"reference": str(args.reference), "noise": source, **result}, indent=1) + "\n"
        )
    return 0 if result["false_alarm_rate"] <= MAX_FALSE_ALARMS else 1
