"""The gate's reference of repeated runs, and its false-alarm rate and power, measured on real runs of unchanged
code varied in harmless ways.

`fmbench calibrate reference RUN_DIR... --out FILE` makes the reference the mean of R runs of one matrix, with the
run-to-run noise per test they measured (fmbench.gate.repeats): a check's floors come from it.

`fmbench calibrate build RUN_DIR... --reference FILE` takes real runs of unchanged code (another weight seed,
other CPU numerics, a slower machine) and keeps every unit the gate compared against the reference (cell, seed,
measure, current - reference, the model it is), the spreads they measured within each run (fmbench.gate.noise:
the floors the gate's tests assume at least, `fmbench check --noise`, where the reference measured none), and each
run's verdict with the floors it was judged by.
That file is the noise model (results/noise/<profile>.json); it holds measurements only, nothing typed in.

`fmbench calibrate check REFERENCE --noise FILE` states the false-alarm rate twice:
- directly: how many of the real runs the gate failed (each run's verdict as `fmbench check` gives it,
  fmbench.gate.verdicts), with the exact binomial interval;
- by simulation: gate runs resampled from the real ones a seed at a time, judged by the gate's own family of tests.
The same resampled runs with a drop injected give the power: the smallest drop of every cell, and of one tuner's
cells alone, caught in >= 80% of them. `--normal-sd SD` assumes N(0, SD) per unit instead, for a machine not at
hand. Both go through one engine, fmbench.gate.simulation; this module builds the model, renders and runs the
command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from fmbench import atomic, resultset
from fmbench.gate import RegressError, evidence, noise, planted, repeats, simulation, verdicts
from fmbench.gate import reference as ref_io
from fmbench.gate.simulation import DROPS, TARGET_POWER
from fmbench.spec import parse_seeds

MAX_FALSE_ALARMS = 0.05


def build(reference: dict, run_dirs: list[Path]) -> dict:
    """The noise model: every unit the gate compared in each real run and each run's verdict. The floors are those
    of the reference's repeats where it has them (the runs are then out of sample); for a single-run reference,
    the spreads measured within these runs (in sample: the runs shaped what judges them)."""
    sets, all_units = [], []
    for folder in map(Path, run_dirs):
        rs = resultset.load(folder)
        ref_io.check_comparable(rs, reference)  # a run that measured something else is refused
        sets.append(rs)
        all_units.append(evidence.evidence(rs, reference)[1])
    floors = verdicts.reference_floors(reference)
    source = "the reference's repeats" if floors else "these runs (in sample)"
    floors = floors or noise.floors(all_units)
    runs = []
    for folder, rs, units in zip(map(Path, run_dirs), sets, all_units):
        _, table = verdicts.check(rs, reference, floors)
        bad = verdicts.failing(table)
        varied = folder / "varied.txt"
        described = ref_io.describe(rs)
        runs.append(
            {
                "folder": str(folder),
                "varied": varied.read_text().strip() if varied.is_file() else "not recorded",
                "machine": described["machine"],
                "libraries": described["libraries"],
                "commit": described["commit"],
                "failing": [verdicts.message(name, cell, test) for name, cell, test in table if name in bad],
                "units": [
                    {
                        "cell": u.cell,
                        "seed": u.seed,
                        "time_limited": u.time_limited,
                        "measure": u.measure,
                        "difference": round(u.current - u.reference, 6),
                        "key": u.key,
                        "step": u.step,
                    }
                    for u in units
                ],
            }
        )
    return {
        "format": noise.FORMAT,
        "version": noise.VERSION,
        "profile": reference["profile"],
        "reference_commit": reference["commit"],
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "floors": floors,
        "floors_from": source,
        "runs": runs,
    }


def spreads(model: dict) -> dict[str, dict]:
    """Per kind of unit, over every real run: how many differences, how many non-zero, their sd and largest size."""
    found: dict[str, list[float]] = {k: [] for k in evidence.KINDS}
    for run in model["runs"]:
        for unit in noise.units(run):
            found[evidence.kind(unit)].append(unit.current)
    out = {}
    for name, values in found.items():
        data = np.asarray(values)
        if len(data):
            out[name] = {
                "n": len(data),
                "nonzero": int(np.count_nonzero(data)),
                "sd": float(data.std(ddof=1)) if len(data) > 1 else 0.0,
                "largest": float(np.abs(data).max()),
            }
    return out


def direct(model: dict) -> dict:
    """The gate's verdict on each real run: how many failed, with the exact (Clopper-Pearson) 95% interval."""
    n, failed = len(model["runs"]), sum(bool(run["failing"]) for run in model["runs"])
    interval = scipy_stats.binomtest(failed, n).proportion_ci(0.95, method="exact")
    return {"runs": n, "failed": failed, "rate": failed / n, "low": float(interval.low), "high": float(interval.high)}


def exported_moves(model: dict, reference: dict) -> dict:
    """How far the value github-action-benchmark tracks (a cell's mean test accuracy over its seeds, what `check
    --export-json` writes) moved between harmless runs: every pair of the reference's runs (each repeat of a repeated
    reference) and the noise model's real runs. The action's alert-threshold is a ratio of that value between two
    commits: below the largest harmless ratio it fires on harmless changes."""
    runs: list[dict] = []
    for cell in reference["cells"]:
        name = evidence.cell_name(cell["tuner"], cell["budget"])
        for seed, record in cell["runs"].items():
            for k, value in enumerate(record.get("test_accuracies", [record["test_accuracy"]])):
                runs += [{} for _ in range(k + 1 - len(runs))]
                runs[k][(name, int(seed))] = value
    base = {key: float(np.mean([run[key] for run in runs if key in run])) for key in runs[0]}
    for run in model["runs"]:
        runs.append(
            {(u.cell, u.seed): base[(u.cell, u.seed)] + u.current for u in noise.units(run) if u.measure == "test"}
        )
    largest, where = 1.0, None
    for cell in sorted({cell for cell, _ in base}):
        seeds = set.intersection(
            *({s for c, s in run if c == cell} for run in runs)
        )  # measured by test accuracy in all
        means = [float(np.mean([run[(cell, s)] for s in seeds])) for run in runs] if seeds else []
        if means and max(means) / min(means) > largest:
            largest, where = max(means) / min(means), cell
    return {"runs": len(runs), "largest_ratio": largest, "cell": where}


def measured(model: dict, runs: int, seed: int = 0, reference: dict | None = None) -> dict:
    """Every figure of the noise model: spreads, direct and simulated false alarms, power across the board and per
    tuner, on the real runs resampled a seed at a time."""
    sample = simulation.Resampled(model, runs, np.random.default_rng(seed))
    simulated = simulation.figures(sample, per_tuner=True)
    return {
        "spreads": spreads(model),
        "floors": model["floors"],
        "floors_from": model["floors_from"],
        "direct": direct(model),
        "runs": sample.count,
        "exact": sample.exact,
        "units": len(sample.template),
        **simulated,
        **({"exported_moves": exported_moves(model, reference)} if reference else {}),
    }


def assumed(reference: dict, sd: float, runs: int, seed: int = 0) -> dict:
    """False-alarm rate and power under N(0, sd) per unit of the reference, units of one model drawn together."""
    source = simulation.Normal(reference, sd, runs, np.random.default_rng(seed))
    return {"runs": source.count, "units": len(source.template), **simulation.figures(source, per_tuner=True)}


def _points(drop: float | None) -> str:
    return f"none up to {DROPS[-1] * 100:.0f} points" if drop is None else f"{drop * 100:.1f} points"


def render(result: dict, source: str) -> str:
    lines = [f"noise: {source}"]
    for name, spread in result.get("spreads", {}).items():
        lines.append(
            f"  {name}: {spread['n']} unit differences from the reference, {spread['nonzero']} non-zero; "
            f"sd {spread['sd'] * 100:.2f} points, largest {spread['largest'] * 100:.2f} points"
        )
    if result.get("floors"):
        lines.append(
            f"least spread each test assumes (measured on {result.get('floors_from', 'the real runs')}): "
            + ", ".join(f"{name} {value * 100:.2f} points" for name, value in result["floors"].items())
        )
    if "direct" in result:
        d = result["direct"]
        lines.append(
            f"direct: the gate failed {d['failed']} of {d['runs']} real runs of unchanged code: {d['rate']:.1%} "
            f"(exact 95% interval {d['low']:.1%} to {d['high']:.1%})"
        )
    how = " (every combination of real runs per seed)" if result.get("exact") else ""
    far = result["false_alarm_rate"]
    lines.append(
        f"simulated: {result['runs']} gate runs{how}, {result['units']} units each; false-alarm rate {far:.1%} "
        f"({'within' if far <= MAX_FALSE_ALARMS else 'ABOVE'} the {MAX_FALSE_ALARMS:.0%} limit)"
    )
    lines.append(
        f"smallest drop of every cell caught with >= {TARGET_POWER:.0%} power: {_points(result['smallest_drop'])}"
    )
    for tuner, drop in result.get("smallest_drop_per_tuner", {}).items():
        lines.append(f"  a drop in {tuner}'s cells alone: {_points(drop)}")
    if "exported_moves" in result:
        moves = result["exported_moves"]
        lines.append(
            f"exported value (a cell's mean test accuracy, `check --export-json`): between two of these "
            f"{moves['runs']} harmless runs it moved by a ratio of up to {moves['largest_ratio']:.3f} "
            f"({moves['cell']}); github-action-benchmark's alert-threshold must be above it"
        )
    lines.append(
        "power at the drops tried: " + ", ".join(f"{d * 100:.1f} pts {p:.0%}" for d, p in result["power"].items())
    )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(required=True, metavar="ACTION")
    build_cmd = commands.add_parser("build", help="a noise model: real runs of unchanged code judged by the gate")
    build_cmd.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN_DIR", help="results folders, one complete run each"
    )
    build_cmd.add_argument(
        "--reference", type=Path, required=True, help="the gate's reference, e.g. results/reference/smoke.json"
    )
    build_cmd.add_argument(
        "--out", type=Path, required=True, help="noise model to write, e.g. results/noise/smoke.json"
    )
    build_cmd.add_argument("--seeds", metavar="LIST", help=ref_io.SEEDS_HELP)
    build_cmd.set_defaults(action="build")
    reference_cmd = commands.add_parser(
        "reference", help="a reference that is the mean of R runs of one matrix, with the noise they measured"
    )
    reference_cmd.add_argument(
        "runs", type=Path, nargs="+", metavar="RUN_DIR", help="results folders, one complete run of the matrix each"
    )
    reference_cmd.add_argument(
        "--out", type=Path, required=True, help="reference to write, e.g. results/reference/gate.json"
    )
    reference_cmd.set_defaults(action="reference", seeds=None)
    check_cmd = commands.add_parser("check", help="false-alarm rates (direct and simulated) and power")
    check_cmd.add_argument(
        "reference", type=Path, help="the reference the gate checks against, e.g. results/reference/smoke.json"
    )
    source = check_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--noise", type=Path, help="noise model built by `calibrate build`")
    source.add_argument(
        "--normal-sd", type=float, help="assume N(0, SD) per unit difference instead (a fraction: 0.02 = 2 points)"
    )
    check_cmd.add_argument(
        "--runs",
        type=int,
        default=1000,
        help="simulated gate runs per figure when they are drawn at random (default 1000)",
    )
    check_cmd.add_argument("--json", type=Path, help="also write the figures as JSON")
    check_cmd.set_defaults(action="check", seeds=None)  # a noise model built with --seeds carries its seeds
    planted_cmd = commands.add_parser(
        "planted", help="planted faults' runs judged by the gate: the points each moved, which rows failed"
    )
    planted_cmd.add_argument(
        "runs", type=Path, nargs="+", metavar="FAULT_DIR", help="folders of scripts/planted_run.sh, one fault each"
    )
    planted_cmd.add_argument(
        "--reference", type=Path, required=True, help="the gate's reference, e.g. results/reference/gate.json"
    )
    planted_cmd.add_argument("--seeds", metavar="LIST", help=ref_io.SEEDS_HELP)
    planted_cmd.add_argument("--out", type=Path, help="also write the table (markdown) here")
    planted_cmd.set_defaults(action="planted")


def command(args: argparse.Namespace) -> int:
    """build: write the model. reference: write a repeated reference. planted: the faults' table. check: exit 1
    when a false-alarm rate (direct or simulated) is above 5%."""
    if args.action == "reference":
        reference = repeats.repeated_reference(args.runs)
        ref_io.write(args.out, reference)
        noisiest = max(reference["noise_sd"].items(), key=lambda item: item[1], default=("none", 0.0))
        print(
            f"wrote {args.out}: the mean of {reference['repeats']} runs; run-to-run noise per test up to "
            f"{noisiest[1] * 100:.2f} points ({noisiest[0]})"
        )
        return 0
    reference = ref_io.load(args.reference)
    if args.seeds:  # build and planted: each run judged on these seeds alone
        reference = ref_io.restrict(reference, parse_seeds(args.seeds, "--seeds"))
    if args.action == "planted":
        return planted.command(args.runs, reference, args.reference, args.out)
    if args.action == "build":
        model = build(reference, args.runs)
        atomic.write_text(args.out, json.dumps(model, indent=1) + "\n")
        failed = sum(bool(run["failing"]) for run in model["runs"])
        print(f"wrote {args.out}: {len(model['runs'])} runs judged against {args.reference}, {failed} failed")
        return 0
    if args.runs < 1:
        raise RegressError(f"--runs must be >= 1, got {args.runs}")
    if args.noise:
        model = noise.load(args.noise)
        if model["profile"] != reference["profile"]:
            raise RegressError(
                f"noise model of profile {model['profile']} for a {reference['profile']} reference; build one "
                "for that profile"
            )
        result = measured(model, args.runs, reference=reference)
        source = f"{args.noise} ({len(model['runs'])} real runs)"
        rates = [result["false_alarm_rate"], result["direct"]["rate"]]
    else:
        if not 0 <= args.normal_sd < 1:
            raise RegressError(f"--normal-sd is a fraction of accuracy in [0, 1), e.g. 0.02; got {args.normal_sd}")
        result = assumed(reference, args.normal_sd, args.runs)
        source = f"assumed N(0, {args.normal_sd * 100:g} points) per unit"
        rates = [result["false_alarm_rate"]]
    print(f"calibration of the gate against {args.reference} (profile {reference['profile']})")
    print(render(result, source))
    if args.json:
        atomic.write_text(
            args.json, json.dumps({"reference": str(args.reference), "noise": source, **result}, indent=1) + "\n"
        )
    return 0 if max(rates) <= MAX_FALSE_ALARMS else 1
