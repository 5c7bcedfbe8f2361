"""Telemetry: aggregation, windows, the machine's GPUs (or none), a fake GPU, thread lifetime, CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import itertools
import os
import shutil
import statistics
import subprocess
import time

import numpy as np
import pytest

from fmbench import telemetry
from fmbench.spec import TelemetrySummary
from fmbench.telemetry import Reading, Sampler, summarize, visible_gpu_indices


class FakeGpu:
    """Two GPUs whose figures step up with every read."""

    def __init__(self) -> None:
        self.reads = 0
        self.closed = False

    def names(self) -> list[str]:
        return ["Fake A", "Fake B"]

    def read(self) -> list[tuple[float, float]]:
        self.reads += 1
        return [(10.0 * self.reads, 100.0), (5.0, 50.0 * self.reads)]

    def close(self) -> None:
        self.closed = True


class FakeHost:
    """CPU figures chosen by the test; the first read has none, as a real HostReader's."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, now: float) -> tuple[float | None, float | None, float]:
        self.reads += 1
        if self.reads == 1:
            return None, None, 100.0
        return 50.0 * self.reads, 10.0 * self.reads, 100.0 + self.reads


def fake_sampler(gpu: FakeGpu | None = None) -> Sampler:
    clock = itertools.count(start=1.0)  # reading n is at time n
    return Sampler(0.5, gpu=gpu or telemetry.NullGpuReader(), host=FakeHost(), clock=lambda: next(clock))


def test_summarize_matches_independent_aggregation():
    rng = np.random.default_rng(1)
    gpu = [float(x) for x in rng.uniform(0, 100, 40)]
    readings = [
        Reading(
            time=float(i),
            cpu_util=None if i == 0 else 20.0 + i,
            system_cpu_util=None if i == 0 else 7.0 * i,
            rss_mb=500.0 + (i * 37) % 101,
            gpu_util=g,
            gpu_mem_mb=1000.0 + 3 * i,
        )
        for i, g in enumerate(gpu)
    ]
    summary = summarize(readings)
    assert summary.samples == 40
    assert summary.cpu_util_mean == round(statistics.mean(20.0 + i for i in range(1, 40)), 1)
    assert summary.system_cpu_util_mean == round(statistics.mean(7.0 * i for i in range(1, 40)), 1)
    assert summary.rss_peak_mb == round(max(500.0 + (i * 37) % 101 for i in range(40)), 1)
    assert summary.gpu_util_mean == round(sum(gpu) / len(gpu), 1)
    ordered = sorted(gpu)  # numpy's default percentile: linear between closest ranks
    rank = 0.95 * (len(ordered) - 1)
    low = int(rank)
    assert summary.gpu_util_p95 == round(ordered[low] + (rank - low) * (ordered[low + 1] - ordered[low]), 1)
    assert summary.gpu_util_max == round(max(gpu), 1)
    assert summary.gpu_mem_peak_mb == 1000.0 + 3 * 39


def test_summarize_empty_and_gpu_less():
    assert summarize([]) == TelemetrySummary(samples=0)
    summary = summarize([Reading(0.0, 150.0, 80.0, 300.0), Reading(1.0, 50.0, 40.0, 200.0)])
    assert (summary.samples, summary.cpu_util_mean, summary.system_cpu_util_mean, summary.rss_peak_mb) == (
        2,
        100.0,
        60.0,
        300.0,
    )
    assert summary.gpu_util_mean is summary.gpu_util_p95 is summary.gpu_util_max is summary.gpu_mem_peak_mb is None


def test_fake_gpu_fills_gpu_fields_busiest_util_and_summed_memory():
    gpu = FakeGpu()
    sampler = fake_sampler(gpu)
    readings = [sampler.sample() for _ in range(3)]
    assert [(r.gpu_util, r.gpu_mem_mb) for r in readings] == [(10.0, 150.0), (20.0, 200.0), (30.0, 250.0)]
    summary = sampler.summary()
    assert (summary.gpu_util_mean, summary.gpu_util_max, summary.gpu_mem_peak_mb) == (20.0, 30.0, 250.0)
    assert summary.gpu_util_p95 == round(float(np.percentile([10.0, 20.0, 30.0], 95)), 1)


def test_summary_window_keeps_only_readings_inside():
    sampler = fake_sampler(FakeGpu())
    for _ in range(6):
        sampler.sample()  # times 1..6
    window = sampler.summary(start=2.0, end=4.0)  # readings 2, 3, 4, bounds included
    assert window.samples == 3
    assert window.cpu_util_mean == statistics.mean([100.0, 150.0, 200.0])
    assert window.gpu_util_max == 40.0 and window.rss_peak_mb == 104.0
    assert sampler.summary(start=5.0).samples == 2
    assert sampler.summary(end=1.5).samples == 1
    assert sampler.summary(start=10.0) == TelemetrySummary(samples=0)
    assert sampler.summary().samples == 6


def busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        np.linalg.svd(np.random.default_rng(0).random((120, 120)))


def test_real_sampler_reports_what_the_machine_has(visible_gpus):
    with Sampler(interval=0.05) as sampler:
        assert sampler.running
        busy(0.5)
    assert not sampler.running
    summary = sampler.summary()
    assert summary.samples > 2
    assert 0 < summary.cpu_util_mean <= 100 * (os.cpu_count() or 1) + 20
    assert 0 < summary.system_cpu_util_mean <= 100 + 1
    assert summary.rss_peak_mb > 0
    gpu_fields = (summary.gpu_util_mean, summary.gpu_util_p95, summary.gpu_util_max, summary.gpu_mem_peak_mb)
    if visible_gpus:
        assert None not in gpu_fields, f"{visible_gpus} visible but GPU fields missing: {summary}"
        assert 0 <= summary.gpu_util_mean <= summary.gpu_util_max <= 100 and summary.gpu_mem_peak_mb >= 0
    else:
        assert gpu_fields == (None, None, None, None), "no GPU visible: GPU fields stay empty, never 0"


def test_gpu_names_are_the_visible_gpus(visible_gpus):
    assert telemetry.gpu_names() == visible_gpus


def test_gpu_names_agree_with_nvidia_smi(monkeypatch):
    # A source independent of NVML's Python binding, where the driver's tool is installed.
    if shutil.which("nvidia-smi") is None:
        pytest.skip("nvidia-smi not installed")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)  # nvidia-smi ignores it
    listed = subprocess.run(
        ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=60
    )
    expected = listed.stdout.split("\n")[:-1] if listed.returncode == 0 else []  # fails when no driver/device
    assert telemetry.gpu_names() == [name.strip() for name in expected]


def test_short_window_still_has_readings_at_start_and_stop():
    with Sampler(interval=60) as sampler:
        busy(0.1)
    readings = sampler.readings
    assert len(readings) == 2
    assert readings[0].cpu_util is None and readings[1].cpu_util > 0  # the first read primes
    assert sampler.summary().samples == 2


def test_reads_too_close_for_the_cpu_clock_give_no_cpu_figure_but_keep_the_baseline():
    host = telemetry.HostReader()
    assert host.read(10.0)[:2] == (None, None)
    assert host.read(10.0)[:2] == (None, None)  # no time passed: nothing to measure
    busy(0.1)
    cpu, system, rss_mb = host.read(10.1)
    assert cpu is not None and cpu > 0 and system is not None and rss_mb > 0


def test_thread_stops_when_body_raises():
    gpu = FakeGpu()
    with pytest.raises(RuntimeError, match="boom"):
        with Sampler(interval=0.01, gpu=gpu) as sampler:
            time.sleep(0.05)
            raise RuntimeError("boom")
    assert not sampler.running
    assert not gpu.closed  # a reader passed in belongs to the caller
    count = len(sampler.readings)
    time.sleep(0.05)
    assert len(sampler.readings) == count


def test_stop_is_idempotent_and_sampler_runs_once():
    sampler = fake_sampler()
    sampler.stop()  # never started: nothing to do
    sampler.start()
    sampler.start()  # already running: no second thread
    sampler.stop()
    sampler.stop()
    assert sampler.readings[-1].time == len(sampler.readings)
    with pytest.raises(RuntimeError, match="runs once"):
        sampler.start()


@pytest.mark.parametrize("interval", [0, -1.0, float("nan")])
def test_interval_must_be_positive(interval):
    with pytest.raises(ValueError, match="interval"):
        Sampler(interval)


UUIDS = ["GPU-aaaa-1111", "GPU-bbbb-2222", "GPU-abcd-3333"]


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, [0, 1, 2]),
        ("", []),
        ("-1", []),
        ("1", [1]),
        ("2, 0", [2, 0]),
        ("0,5,1", [0]),  # CUDA stops at the first entry naming no GPU
        ("0,0", [0]),
        ("GPU-bbbb", [1]),  # a unique UUID prefix
        ("GPU-a", []),  # ambiguous prefix
        ("GPU-abcd-3333,0", [2, 0]),
        ("MIG-1234", []),
    ],
)
def test_visible_gpu_indices(value, expected):
    assert visible_gpu_indices(value, UUIDS) == expected


def test_open_gpu_reader_honours_cuda_visible_devices(monkeypatch):
    pynvml = pytest.importorskip("pynvml")
    shutdowns = []
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: shutdowns.append(1))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 3)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: i)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUUID", lambda h: UUIDS[h].encode())
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda h: f"Card {h}")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-aaaa")
    assert telemetry.gpu_names() == ["Card 2", "Card 0"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert isinstance(telemetry.open_gpu_reader(), telemetry.NullGpuReader)
    assert telemetry.gpu_names() == []
    assert len(shutdowns) == 3  # every init is shut down again


def test_gpu_names_never_raises(monkeypatch):
    def broken() -> None:
        raise OSError("driver gone")

    monkeypatch.setattr(telemetry, "open_gpu_reader", broken)
    assert telemetry.gpu_names() == []
