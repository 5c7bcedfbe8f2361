"""`fmbench table build OUT_DIR` (measure learning curves into a table) and `fmbench table fit TABLE_DIR` (the
surrogate's fidelity on held-out configurations). Imports no Keras until the backend is chosen (fmbench.cli)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from fmbench import profiles
from fmbench.replay import configs
from fmbench.spec import DataSizes

DEFAULT_PROFILE = "standard"  # the sizes and epochs of the real runs a replay stands in for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(required=True, metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="train configurations of the MLP space (a Sobol cover) and store their per-epoch curves; resumable",
        description="Trains the first --configs configurations of the MLP space's scrambled Sobol sequence, each for "
        "the profile's epochs at the profile's data sizes, recording validation and test accuracy and seconds "
        "after every epoch into OUT_DIR/table.csv.gz. Rerun the same command to resume: stored fits are skipped.",
    )
    build.add_argument("out_dir", help="the table's folder (created; an existing table there is resumed)")
    build.add_argument("--configs", type=int, default=1000, help="configurations to measure (default 1000)")
    build.add_argument(
        "--noise-configs",
        type=int,
        help="the first N configurations are trained with --noise-seeds weight seeds, to measure seed noise "
        f"(default {configs.NOISE_CONFIGS}, or --configs if fewer)",
    )
    build.add_argument("--noise-seeds", type=int, default=3, help="weight seeds of a noise configuration (default 3)")
    build.add_argument(
        "--baseline-seeds",
        type=int,
        default=configs.BASELINE_SEEDS,
        help="weight seeds of the hard-coded baseline model, measured first (config_id "
        f"{configs.BASELINE_ID}), so a replay's baseline is measured, not predicted (default {configs.BASELINE_SEEDS}; "
        "shard 1 measures them)",
    )
    build.add_argument(
        "--shard", default="1/1", help="K/N: measure every N-th configuration from the K-th (default 1/1)"
    )
    standard = profiles.PROFILES[DEFAULT_PROFILE]
    build.add_argument(
        "--profile",
        default=DEFAULT_PROFILE,
        help=f"data sizes, epochs, batch size and backend from a profile: {', '.join(profiles.PROFILES)} (default "
        f"{DEFAULT_PROFILE}: {_sizes(standard.sizes)}, {standard.epochs} epochs, on {standard.backend})",
    )
    build.add_argument("--epochs", type=int, help="epochs per configuration (default: the profile's)")
    for split in ("train", "val", "test"):
        build.add_argument(f"--{split}-images", type=int, help=f"{split} images (default: the profile's)")
    build.add_argument("--backend", help="Keras backend: tensorflow or jax (default: the profile's)")
    build.add_argument(
        "--data-dir",
        help="folder with the four Fashion-MNIST IDX .gz files (default $FMBENCH_DATA_DIR, else Keras's download)",
    )
    build.set_defaults(command=_build, name="table build")

    fit = actions.add_parser(
        "fit",
        help="fit the surrogate on part of a table's configurations and write its fidelity on the others",
    )
    fit.add_argument("table_dir", help="a folder written by `fmbench table build`")
    fit.add_argument("--holdout", type=float, default=0.2, help="share of configurations held out (default 0.2)")
    fit.add_argument("--seed", type=int, default=0, help="seed of the split and the models (default 0)")
    fit.add_argument(
        "--compare",
        action="store_true",
        help="instead, judge every candidate accuracy model on the same held-out splits and write models.md",
    )
    fit.set_defaults(command=_fit, name="table fit")


def _build(args: argparse.Namespace) -> int:
    profile = profiles.get_profile(args.profile)
    plan = configs.Plan(  # checked before Keras loads
        configs=args.configs,
        noise_configs=min(configs.NOISE_CONFIGS, args.configs) if args.noise_configs is None else args.noise_configs,
        noise_seeds=args.noise_seeds,
        shard=configs.parse_shard(args.shard),
        baseline_seeds=args.baseline_seeds,
        epochs=profile.epochs if args.epochs is None else args.epochs,
        batch_size=profile.batch_size,
    )
    sizes = dataclasses.replace(
        profile.sizes,
        **{
            split: value
            for split, value in (("train", args.train_images), ("val", args.val_images), ("test", args.test_images))
            if value is not None
        },
    )
    from fmbench import data, machine
    from fmbench.replay import build

    machine.code_commit()  # before the fits: the commit of the code this process loaded
    split = data.load(data.resolve_data_dir(args.data_dir), sizes)
    build.build(Path(args.out_dir), plan, split, _command(), progress=lambda line: print(line, flush=True))
    return 0


def _fit(args: argparse.Namespace) -> int:
    from fmbench.replay import fidelity, table

    loaded = table.load(Path(args.table_dir))
    if args.compare:
        path = fidelity.write_comparison(Path(args.table_dir), loaded, args.holdout, _command())
    else:
        _, path = fidelity.write(Path(args.table_dir), loaded, args.holdout, args.seed, _command())
    print(path.read_text(), end="")
    print(f"written to {path}")
    return 0


def _sizes(sizes: DataSizes) -> str:
    counts = (sizes.train, sizes.val, sizes.test)
    return "train / validation / test images " + " / ".join("all" if n is None else str(n) for n in counts)


def _command() -> str:
    return shlex.join(["fmbench", *sys.argv[1:]])
