"""Where each of several processes on one machine runs: a GPU of its own where there are several, else a share
of the cores.

Applied through the environment before a Keras backend is imported: TensorFlow reads CUDA_VISIBLE_DEVICES and
its thread-pool sizes (TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS) once, when it starts, and JAX its XLA_FLAGS.
"""

from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

# The BLAS and OpenMP pools of numpy, scipy (its own OpenBLAS, loaded with scipy.linalg) and scikit-learn read theirs
# when each library loads: set before, they start with the share; those loaded already take it from threadpoolctl.
POOL_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "XLA_FLAGS", *POOL_VARIABLES)
# XLA's CPU backend has a switch for one thread, not a count: a process whose share is one core gets it.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def visible_gpu_ids() -> list[str]:
    """The GPUs this process sees, named as CUDA_VISIBLE_DEVICES would name them to a child."""
    from fmbench import telemetry

    count, visible = len(telemetry.gpu_names()), os.environ.get("CUDA_VISIBLE_DEVICES")
    return ([t.strip() for t in visible.split(",")] if visible else [str(i) for i in range(count)])[:count]


def process_env(index: int, count: int, gpu_ids: list[str], cores: int) -> dict[str, str]:
    """The variables for process `index` of `count`: one GPU each, round robin, where there are several;
    where there are none, an equal share of the cores, so N processes do not each start a pool of every core.
    With one GPU every process shares it (TensorFlow's memory growth is on) and nothing changes."""
    if len(gpu_ids) > 1:
        return {"CUDA_VISIBLE_DEVICES": gpu_ids[index % len(gpu_ids)]}
    if gpu_ids:
        return {}
    threads = max(1, cores // count)
    env = dict.fromkeys(("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", *POOL_VARIABLES), str(threads))
    return env | {"XLA_FLAGS": XLA_ONE_THREAD} if threads == 1 else env


def apply(index: int, count: int) -> str:
    """Sets this process's share in os.environ (thread counts the user set are kept); says what it got."""
    env = process_env(index, count, visible_gpu_ids(), os.cpu_count() or 1)
    for name, value in env.items():
        if name in THREAD_VARIABLES:
            os.environ.setdefault(name, value)
        else:
            os.environ[name] = value
    if "OMP_NUM_THREADS" in env:
        # Each pool would otherwise start a thread per core in every process, threads that spin between the tiny
        # matrix products of a keras-tuner Gaussian process: on 2 cores, one process spent 142 s of CPU for the 82 s
        # of four replayed Bayesian searches with them and 95 s with one thread each, proposing the same trials.
        threadpool_limits(limits=int(os.environ["OMP_NUM_THREADS"]))
    if "CUDA_VISIBLE_DEVICES" in env:
        return f"GPU {env['CUDA_VISIBLE_DEVICES']}"
    if env:
        return f"{os.environ['TF_NUM_INTRAOP_THREADS']} backend threads of {os.cpu_count()} cores"
    return "the one GPU, shared"
