"""`python -m fmbench.search.distributed`: a local worker, as the chief starts it (serving.Chief._launch)."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

from fmbench.search.distributed.options import DEFAULT_STALL_TIMEOUT


def main(argv: list[str] | None = None) -> int:
    """A local worker, as the chief starts it."""
    from fmbench.search.distributed.worker import work

    parser = argparse.ArgumentParser(prog="python -m fmbench.search.distributed", description=main.__doc__)
    for option in ("--run-dir", "--oracle-address", "--worker-id"):
        parser.add_argument(option, required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--parent-pid", type=int)
    parser.add_argument("--timeout", type=float, default=DEFAULT_STALL_TIMEOUT)
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    return work(
        args.run_dir,
        args.oracle_address,
        args.worker_id,
        args.data_dir,
        timeout=args.timeout,
        progress=lambda line: print(line, flush=True),
    )


def _exit_with_parent(parent_pid: int) -> None:
    """A worker whose chief died, even by SIGKILL, exits instead of waiting on a dead oracle."""
    while os.getppid() == parent_pid:
        time.sleep(1)
    os._exit(3)


if __name__ == "__main__":
    from fmbench import backend

    # The chief's KERAS_BACKEND (inherited) before anything loads Keras; on TensorFlow this also quiets its C++
    # start-up chatter, which would otherwise be the last log line the chief reports when a worker dies.
    backend.select()
    sys.exit(main())
