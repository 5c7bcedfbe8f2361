"""One search across processes with keras-tuner's chief/worker mode: a chief serves the oracle over gRPC.

The chief holds the one budgeted oracle, so trial and time budgets hold for the whole search. It serves it with
keras-tuner's OracleServicer, starts local workers (`python -m fmbench.search.distributed`) and merges the trial
records they write to the shared run directory; its `search` goes into protocol.run, which then retrains and tests
as always. A worker is keras-tuner's own distributed mode: KERASTUNER_* in its environment makes its oracle an
OracleClient of the chief. Both serve whatever space the spec names (fmbench.models.space_of).

options.py       the CLI's distributed options, checked before a run starts
rundir.py        the run directory's files: how the chief and its workers meet
serving.py       the chief: binds, declares the space, starts and watches workers, serves the oracle
worker.py        a worker process: the chief's spec, a heartbeat, its data
worker_tuner.py  the worker's tuner, whose oracle is the chief's (Keras and keras-tuner load here)
patches.py       every keras-tuner private name the two rely on, each in one named, checked patch
__main__.py      a local worker's command line; it picks the chief's Keras backend before Keras loads

Importing the package loads no Keras: the CLI checks options first, and a worker picks its backend first.
"""

from __future__ import annotations

from fmbench.search.distributed.options import PortBusyError, check_options, parse_address
from fmbench.search.distributed.serving import Chief, bind_server, chief
from fmbench.search.distributed.worker import work

__all__ = ["Chief", "PortBusyError", "bind_server", "check_options", "chief", "parse_address", "work"]
