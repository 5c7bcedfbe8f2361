"""`fmbench run | report | check | history | calibrate | data | table`: bad input exits 2 in one line, a drop
exits 1."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from fmbench import backend, profiles  # none of these imports Keras: the backend is chosen before it loads
from fmbench.registry import RUNNER_NAMES
from fmbench.spec import Budget, SpecError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from fmbench.data import DataError
    from fmbench.gate import RegressError
    from fmbench.results import ResultsError

    try:
        profile = getattr(args, "profile", None)  # only `run` has one; its cells run on the profile's backend
        default = profiles.get_profile(profile).backend if profile else backend.DEFAULT
        backend.select(getattr(args, "backend", None), default)
        return args.command(args)
    except (SpecError, DataError, ResultsError, RegressError) as exc:
        print(f"fmbench {args.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fmbench {args.name}: interrupted; rows already written are complete", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from fmbench.gate import check as gate_check
    from fmbench.report import document

    parser = argparse.ArgumentParser(prog="fmbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fmbench {_version()}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run one tuner (or the baseline) and append its rows")
    run.add_argument("--tuner", required=True, help=", ".join(RUNNER_NAMES))
    run.add_argument("--seed", type=int, default=1, help="integer >= 1 (default 1)")
    run.add_argument(
        "--max-trials", type=int, help="stop after N trials (with no budget given: the profile's first budget)"
    )
    run.add_argument("--max-seconds", type=float, help="stop the search after S wall-clock seconds")
    run.add_argument(
        "--max-epochs",
        type=int,
        help="stop after E training epochs summed over all trials (the fair unit between Hyperband and the others)",
    )
    run.add_argument(
        "--backend",
        help=f"Keras backend: {', '.join(backend.BACKENDS)} (default $KERAS_BACKEND, else the profile's: "
        + ", ".join(f"{p.name} {p.backend}" for p in profiles.PROFILES.values())
        + "); rows record it, and comparisons never mix two",
    )
    run.add_argument(
        "--space", help="search space: mlp (default; the profile's) or cnn (keras-tuner's HyperResNet / HyperXception)"
    )
    run.add_argument(
        "--profile",
        default=profiles.DEFAULT_PROFILE,
        help=f"data sizes and epochs from a profile: {', '.join(profiles.PROFILES)}",
    )
    run.add_argument(
        "--data-dir",
        help="folder with the four Fashion-MNIST IDX .gz files (default: $FMBENCH_DATA_DIR, else download "
        "through Keras)",
    )
    run.add_argument(
        "--replay-table",
        metavar="DIR",
        help="with a replay profile: the table folder to replay (`fmbench table build`), in place of the profile's",
    )
    run.add_argument(
        "--out",
        default="results/local/adhoc",
        help="folder for runs.csv and trials.csv (default results/local/adhoc, which git ignores)",
    )
    dist = run.add_argument_group(
        "distributed search (keras-tuner's chief oracle over gRPC; one budget for the whole search)"
    )
    dist.add_argument(
        "--workers", type=int, help="start a chief and N local worker processes (one GPU each where there are several)"
    )
    dist.add_argument(
        "--role", choices=("chief", "worker"), help="multi-host: serve the oracle (chief) or run its trials (worker)"
    )
    dist.add_argument(
        "--oracle-address", help="HOST:PORT the chief binds (default 127.0.0.1 and a free port) or a worker connects to"
    )
    dist.add_argument(
        "--run-dir", help="folder shared by chief and workers (trial records, checkpoints); required with --role"
    )
    dist.add_argument(
        "--stall-timeout",
        type=float,
        default=1800.0,
        help="give up after S seconds without a trial starting or ending (default 1800)",
    )
    run.set_defaults(command=_run, name="run")

    data = commands.add_parser("data", help="check a data folder and print what it holds")
    data.add_argument("--data-dir", help="as for run")
    data.set_defaults(command=_data, name="data")

    rep = commands.add_parser("report", help="stored results -> markdown report and plots")
    document.add_arguments(rep)
    rep.set_defaults(command=document.command, name="report")

    check = commands.add_parser("check", help="stored results vs a reference: exit 1 on an accuracy drop")
    gate_check.add_arguments(check)
    check.set_defaults(command=gate_check.command, name="check")

    history = commands.add_parser(
        "history", help="a cell's accuracy and seconds across commits, and the commits where it stepped down"
    )
    history.set_defaults(command=lambda args: _history().command(args), name="history")
    _history().add_arguments(history)

    calibrate = commands.add_parser(
        "calibrate", help="the gate's false-alarm rate and power, by simulation on a noise model of real runs"
    )
    calibrate.set_defaults(command=lambda args: _calibrate().command(args), name="calibrate")
    _calibrate().add_arguments(calibrate)

    table = commands.add_parser(
        "table", help="measure learning curves into a table (build), judge its surrogate (fit): for replayed searches"
    )
    _replay_cli().add_arguments(table)
    return parser


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("fmbench")
    except metadata.PackageNotFoundError:  # a checkout on sys.path, not installed
        return "unknown (not installed)"


def _history():
    from fmbench import history

    return history


def _calibrate():
    from fmbench.gate import calibrate

    return calibrate


def _replay_cli():
    from fmbench.replay import cli as replay_cli

    return replay_cli


def _run(args: argparse.Namespace) -> int:
    profile = profiles.get_profile(args.profile)
    budget = Budget(max_trials=args.max_trials, max_seconds=args.max_seconds, max_epochs=args.max_epochs)
    if budget.is_empty and profile.budgets:
        # No budget given: the profile's first, which lets every tuner run its own algorithm (Profile checks it).
        budget = profile.budgets[0]
    spec = profile.spec(args.tuner, args.seed, budget)  # validates tuner, seed and budget before any import of TF
    if args.space is not None:
        spec = dataclasses.replace(spec, space=args.space)
    if args.replay_table is not None:
        spec = dataclasses.replace(spec, replay_table=args.replay_table)  # RunSpec refuses it for a real run
    distributed = args.workers is not None or args.role is not None or args.oracle_address is not None
    if distributed:
        from fmbench.search import distributed as dist

        dist.check_options(args, spec)
        if args.role == "worker":
            return dist.work(
                args.run_dir, args.oracle_address, data_dir=args.data_dir, expected=spec, timeout=args.stall_timeout
            )

    from fmbench import data, machine, results, run_rows, suite

    suite.check_replay_tables([spec])  # a table that cannot replay the run is refused before the data loads
    machine.code_commit()  # before the run: the commit of the code it loaded
    split = data.load(data.resolve_data_dir(args.data_dir), spec.sizes)  # bad data fails here, before TF loads
    from fmbench import protocol
    from fmbench.report import summary

    print(
        f"fmbench run: {spec.cell} on {len(split.y_train)} train / {len(split.y_val)} val / "
        f"{len(split.y_test)} test images, profile {profile.name}",
        flush=True,
    )
    if distributed:
        result = protocol.run_distributed(
            spec,
            split,
            progress=lambda line: print(line, flush=True),
            workers=args.workers or 0,
            address=args.oracle_address or "127.0.0.1:0",
            run_dir=args.run_dir,
            data_dir=args.data_dir,
            stall_timeout=args.stall_timeout,
        )
    else:
        result = protocol.run(spec, split, progress=lambda line: print(line, flush=True))
    out = Path(args.out)
    run_rows.save_run(out, result)
    print(summary.run_summary(result))
    print(f"rows appended to {out / results.RUNS_FILE} and {out / results.TRIALS_FILE}")
    return 0 if not result.error else 1


def _data(args: argparse.Namespace) -> int:
    from fmbench import data
    from fmbench.spec import DataSizes

    directory = data.resolve_data_dir(args.data_dir)
    split = data.load(directory, DataSizes())
    print(
        f"Fashion-MNIST from {directory or 'the Keras loader'}: {len(split.y_train)} train, "
        f"{len(split.y_val)} validation, {len(split.y_test)} test images; all valid"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
