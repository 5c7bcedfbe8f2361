"""Cells per hour of the benchmark matrix with 1, 2, ... pytest-xdist workers on this machine.

    python scripts/cells_per_hour.py --profile smoke --workers 1,2

Each session runs benchmarks/test_matrix.py with `-n N` into a fresh scratch folder; the figure is the cells
that left a complete row divided by the session's wall-clock time (start-up included). Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fmbench import profiles, resultset  # noqa: E402 - after sys.path holds the checkout


def session(profile: str, workers: int, out: Path) -> float:
    command = [
        sys.executable,
        "-m",
        "pytest",
        "benchmarks/test_matrix.py",
        "-p",
        "no:cacheprovider",
        "-q",
        "-n",
        str(workers),
        "--fmbench-profile",
        profile,
        "--fmbench-out",
        str(out),
    ]
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"-n {workers} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke", choices=list(profiles.PROFILES))
    parser.add_argument("--workers", default="1,2", help="comma list of worker counts (default 1,2)")
    args = parser.parse_args()
    expected = sorted(spec.cell for spec in profiles.get_profile(args.profile).expand())
    rates = {}
    for workers in (int(n) for n in args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix=f"fmbench-n{workers}-") as scratch:
            seconds = session(args.profile, workers, Path(scratch))
            rs = resultset.load(Path(scratch))
        complete = rs.ok
        rows = len(rs.runs) + len(rs.superseded)
        if sorted(rs.runs.cell) != expected or len(complete) != len(expected) or rows != len(expected):
            sys.exit(
                f"-n {workers}: rows are not one complete row per cell ({rows} rows, {len(complete)} "
                f"complete, {len(expected)} cells)"
            )
        rates[workers] = 3600 * len(complete) / seconds
        print(f"-n {workers}: {len(complete)} cells in {seconds:.1f} s = {rates[workers]:.1f} cells/hour", flush=True)
    first = next(iter(rates))
    for workers, rate in rates.items():
        if workers != first:
            print(f"speed-up -n {workers} over -n {first}: {rate / rates[first]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
