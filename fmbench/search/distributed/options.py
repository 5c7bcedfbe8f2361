"""The distributed options of `fmbench run` (--workers, --role, --oracle-address, --run-dir), checked before any
data or TensorFlow loads: a SpecError exits 2 with one line."""

from __future__ import annotations

import argparse

from fmbench.registry import BASELINES, DISTRIBUTABLE, RUNNERS
from fmbench.spec import RunSpec, SpecError

DEFAULT_STALL_TIMEOUT = 1800.0  # seconds without a trial starting or ending before the chief gives up


class PortBusyError(SpecError):
    """The oracle address cannot be bound: in use, or not an address of this host."""


def parse_address(text: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); port 0 asks the OS for a free one."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise SpecError(
            f"oracle address {text!r} is not HOST:PORT (e.g. 0.0.0.0:8765 on the chief, chief-host:8765 on a worker)"
        )
    return host.strip("[]"), int(port)


def distributable_spaces() -> tuple[str, ...]:
    """The spaces some distributable tuner searches, in the registry's order: what --workers/--role can serve."""
    return tuple(dict.fromkeys(space for name in DISTRIBUTABLE for space in RUNNERS[name].spaces))


def check_trainer(spec: RunSpec) -> None:
    """Workers train their trials with Keras in processes of their own, which have no replay table: a replayed run
    searches in one process (in seconds), so the chief refuses it with a one-line SpecError."""
    if spec.trainer != "keras":
        raise SpecError(
            f"--workers/--role train Keras models in worker processes, which replay no table: run {spec.cell} "
            f"({spec.trainer}) in one process, without them"
        )


def check_options(args: argparse.Namespace, spec: RunSpec) -> None:
    """The CLI's distributed options against the run they serve; raises SpecError with one line."""
    if spec.tuner in BASELINES:
        raise SpecError(f"--workers/--role need a tuner ({', '.join(DISTRIBUTABLE)}): the {spec.tuner} has no search")
    check_trainer(spec)
    # RunSpec has already checked that the tuner searches spec.space; the registry says which tuners distribute.
    if spec.tuner not in DISTRIBUTABLE:
        raise SpecError(
            f"--workers/--role serve a keras-tuner oracle to Keras workers ({', '.join(DISTRIBUTABLE)}; "
            f"{' or '.join(distributable_spaces())} space): {spec.cell} runs in one process; drop them"
        )
    if args.workers is not None and args.workers < 1:
        raise SpecError(f"--workers must be >= 1, got {args.workers}")
    if args.role is not None and args.run_dir is None:
        raise SpecError(f"--role {args.role} needs --run-dir: a folder the chief and its workers share")
    if args.role == "worker" and (args.oracle_address is None or args.workers is not None):
        raise SpecError(
            "--role worker needs --oracle-address CHIEF_HOST:PORT and takes no --workers (that is the chief's)"
        )
    if args.role is None and args.workers is None:
        raise SpecError("--oracle-address needs --role chief|worker or --workers N")
    if args.oracle_address is not None:
        parse_address(args.oracle_address)
    if spec.budget.max_epochs is not None:
        # Workers count their own epochs only; a global epoch count would need the chief to track fits.
        raise SpecError(
            f"an epoch budget ({spec.budget.label}) is not supported with --workers/--role: "
            "give --max-trials or --max-seconds"
        )
