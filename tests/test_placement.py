"""Each parallel process's share of the machine: a GPU of its own, else a share of the cores."""

from __future__ import annotations

from fmbench import placement


def test_several_gpus_give_each_process_one_round_robin():
    gpus = ["0", "1"]
    assert [placement.process_env(i, 3, gpus, cores=16) for i in range(3)] == [
        {"CUDA_VISIBLE_DEVICES": "0"},
        {"CUDA_VISIBLE_DEVICES": "1"},
        {"CUDA_VISIBLE_DEVICES": "0"},
    ]


def test_gpu_names_pass_through_as_the_parent_named_them():
    # a parent limited to GPUs 2 and 5 (or UUIDs) hands each child one of those names, not 0 and 1
    assert placement.process_env(1, 2, ["2", "5"], cores=8) == {"CUDA_VISIBLE_DEVICES": "5"}


def test_one_gpu_is_shared_and_nothing_changes():
    assert placement.process_env(1, 2, ["0"], cores=8) == {}


def test_without_gpu_the_cores_are_split():
    pools = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    assert placement.process_env(0, 2, [], cores=8) == dict.fromkeys(pools, "4") | {"MKL_NUM_THREADS": "4"}
    # One core each: JAX's XLA gets its one-thread switch too.
    assert placement.process_env(2, 3, [], cores=2) == dict.fromkeys(pools, "1") | {
        "MKL_NUM_THREADS": "1",
        "XLA_FLAGS": placement.XLA_ONE_THREAD,
    }


def test_apply_gives_the_loaded_blas_and_openmp_pools_the_share(monkeypatch):
    calls = []
    monkeypatch.setattr(placement, "threadpool_limits", lambda limits=None: calls.append(limits))
    monkeypatch.setattr(placement, "visible_gpu_ids", lambda: [])
    monkeypatch.setattr(placement.os, "cpu_count", lambda: 2)
    for name in placement.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    placement.apply(1, 2)
    assert calls == [1]
    monkeypatch.setattr(placement, "visible_gpu_ids", lambda: ["0"])
    placement.apply(1, 2)  # one shared GPU: nothing changes
    assert calls == [1]


def test_apply_keeps_thread_counts_the_user_set(monkeypatch):
    monkeypatch.setattr(placement, "threadpool_limits", lambda limits=None: None)
    monkeypatch.setattr(placement, "visible_gpu_ids", lambda: [])
    monkeypatch.setattr(placement.os, "cpu_count", lambda: 8)
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "3")
    monkeypatch.delenv("TF_NUM_INTEROP_THREADS", raising=False)
    assert placement.apply(0, 2) == "3 backend threads of 8 cores"
    assert placement.os.environ["TF_NUM_INTEROP_THREADS"] == "4"


def test_apply_sets_the_gpu_even_over_an_inherited_list(monkeypatch):
    monkeypatch.setattr(placement, "visible_gpu_ids", lambda: ["0", "1"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert placement.apply(1, 2) == "GPU 1"
    assert placement.os.environ["CUDA_VISIBLE_DEVICES"] == "1"
