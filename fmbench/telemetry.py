"""Resource telemetry: a background sampler of CPU, memory and (through NVML) GPU use during a run."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import psutil

from fmbench.spec import TelemetrySummary

MIB = 2**20  # "MB" throughout means MiB, as nvidia-smi reports it
GpuFigures = list[tuple[float, float]]  # per visible GPU: (utilisation %, memory used MB)


@dataclass(frozen=True)
class Reading:
    """One sample. CPU figures cover the time since the previous sample, so the first one has none."""

    time: float  # time.monotonic()
    cpu_util: float | None  # this process and its reaped children, percent of one core
    system_cpu_util: float | None  # whole machine, percent of all cores
    rss_mb: float | None  # None from NullHostReader
    # The busiest visible GPU, not the mean: TF trains on one GPU unless told otherwise,
    # and a mean over two visible GPUs would show a saturated one as 50%.
    gpu_util: float | None = None
    gpu_mem_mb: float | None = None  # sum over visible GPUs, device-wide (other processes included)


class GpuReader(Protocol):
    """What the sampler needs from a GPU backend."""

    def names(self) -> list[str]: ...
    def read(self) -> GpuFigures: ...  # [] means no figures
    def close(self) -> None: ...


class NullGpuReader:
    """Stand-in where there is no GPU or no NVML: no names, no figures."""

    def names(self) -> list[str]:
        return []

    def read(self) -> GpuFigures:
        return []

    def close(self) -> None:
        pass


class NvmlGpuReader:
    """The visible GPUs through NVML; open_gpu_reader() builds it or falls back to the null one."""

    def __init__(self, nvml: Any, handles: list[Any]) -> None:
        self._nvml, self._handles = nvml, handles

    def names(self) -> list[str]:
        return [_text(self._nvml.nvmlDeviceGetName(h)) for h in self._handles]

    def read(self) -> GpuFigures:
        nvml = self._nvml
        try:
            return [
                (float(nvml.nvmlDeviceGetUtilizationRates(h).gpu), nvml.nvmlDeviceGetMemoryInfo(h).used / MIB)
                for h in self._handles
            ]
        except Exception:  # a GPU lost mid-run (or NVML shut down) costs its figures, never the run
            return []

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception:
            pass


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value  # older nvidia-ml-py returns bytes


def visible_gpu_indices(cuda_visible_devices: str | None, uuids: Sequence[str]) -> list[int]:
    """NVML indices of the GPUs CUDA_VISIBLE_DEVICES leaves visible, in its order.

    As CUDA reads it: unset means all; entries are indices or unique UUID prefixes; the list
    ends at the first entry naming no GPU, so "" and "-1" hide all. Indices follow NVML's PCI
    order, which is CUDA's on machines of identical GPUs. MIG ids end the list (no figures).
    """
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    chosen: list[int] = []
    for token in (t.strip() for t in cuda_visible_devices.split(",")):
        if token.isdigit():
            matches = [int(token)] if int(token) < len(uuids) else []
        else:
            matches = [i for i, u in enumerate(uuids) if token and u.startswith(token)]
        if len(matches) != 1:
            break
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def open_gpu_reader() -> GpuReader:
    """An NVML reader of the visible GPUs, or the null reader when NVML or a visible GPU is missing."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no package, no driver library, no device: all mean "no GPU figures"
        return NullGpuReader()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        chosen = visible_gpu_indices(
            os.environ.get("CUDA_VISIBLE_DEVICES"), [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
        )
        if chosen:
            return NvmlGpuReader(pynvml, [handles[i] for i in chosen])
    except Exception:
        pass
    NvmlGpuReader(pynvml, []).close()
    return NullGpuReader()


def gpu_names() -> list[str]:
    """Model names of the visible GPUs; [] without any. Never raises."""
    try:
        reader = open_gpu_reader()
        try:
            return reader.names()
        finally:
            reader.close()
    except Exception:
        return []


class HostReader:
    """This process's and the machine's CPU use since the previous read, and the process's RSS.

    From cpu_times deltas kept here rather than psutil.cpu_percent(), whose state is per calling
    thread: the first read primes both figures, whichever thread makes it.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._last: tuple[float, float, float, float] | None = None  # wall, process busy, system busy, total

    def read(self, now: float) -> tuple[float | None, float | None, float]:
        p = self._process.cpu_times()
        process_busy = p.user + p.system + p.children_user + p.children_system  # reaped children: free to add
        s = psutil.cpu_times()
        total = sum(s) - getattr(s, "guest", 0.0) - getattr(s, "guest_nice", 0.0)  # guest is inside user on Linux
        system_busy = total - s.idle - getattr(s, "iowait", 0.0)
        rss_mb = self._process.memory_info().rss / MIB
        last = self._last
        if last is None or now <= last[0] or total <= last[3]:
            # First read, or too soon after the last for the kernel's CPU clock (ticks of ~10 ms)
            # to have moved: no figure rather than a false 0, and the next read spans both.
            self._last = last or (now, process_busy, system_busy, total)
            return None, None, rss_mb
        self._last = (now, process_busy, system_busy, total)
        return (
            100 * (process_busy - last[1]) / (now - last[0]),
            100 * (system_busy - last[2]) / (total - last[3]),
            rss_mb,
        )


class NullHostReader:
    """Stand-in where this machine's use is not the run's (a replay's fits ran where its table was measured): no
    figures, so no row claims a utilisation nobody measured."""

    def read(self, now: float) -> tuple[None, None, None]:
        return None, None, None


def _stat(values: Sequence[float], fn: Callable[[Sequence[float]], Any]) -> float | None:
    return round(float(fn(values)), 1) if values else None


def summarize(readings: Sequence[Reading]) -> TelemetrySummary:
    """Aggregate readings; a figure that no reading has stays None, never 0."""
    gpu = [r.gpu_util for r in readings if r.gpu_util is not None]
    return TelemetrySummary(
        samples=len(readings),
        cpu_util_mean=_stat([r.cpu_util for r in readings if r.cpu_util is not None], np.mean),
        system_cpu_util_mean=_stat([r.system_cpu_util for r in readings if r.system_cpu_util is not None], np.mean),
        rss_peak_mb=_stat([r.rss_mb for r in readings if r.rss_mb is not None], max),
        gpu_util_mean=_stat(gpu, np.mean),
        gpu_util_p95=_stat(gpu, lambda v: np.percentile(v, 95)),
        gpu_util_max=_stat(gpu, max),
        gpu_mem_peak_mb=_stat([r.gpu_mem_mb for r in readings if r.gpu_mem_mb is not None], max),
    )


class Sampler:
    """Samples every `interval` seconds in a daemon thread: one per run, summaries per window.

    Reads once at start and once at stop, so a window shorter than the interval still has
    data; call sample() at a trial boundary for the same reason. Runs once.
    """

    def __init__(
        self,
        interval: float = 0.5,
        *,
        gpu: GpuReader | None = None,
        host: HostReader | NullHostReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"telemetry interval must be > 0 seconds, got {interval!r}")
        self.interval = interval
        self._owns_gpu = gpu is None
        self._gpu: GpuReader = open_gpu_reader() if gpu is None else gpu
        self._host = HostReader() if host is None else host
        self._clock = clock
        self._readings: list[Reading] = []
        self._lock = threading.Lock()  # sample() runs in the thread and in callers
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> Reading:
        """Take one reading now and keep it."""
        with self._lock:
            now = self._clock()
            cpu, system, rss_mb = self._host.read(now)
            per_gpu = self._gpu.read()
            reading = Reading(
                now,
                cpu,
                system,
                rss_mb,
                gpu_util=max(u for u, _ in per_gpu) if per_gpu else None,
                gpu_mem_mb=sum(m for _, m in per_gpu) if per_gpu else None,
            )
            self._readings.append(reading)
            return reading

    @property
    def readings(self) -> tuple[Reading, ...]:
        with self._lock:
            return tuple(self._readings)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Sampler:
        if self._stopping.is_set():
            raise RuntimeError("a Sampler runs once: make a new one")
        if self._thread is None:
            self.sample()  # primes the CPU deltas and opens the window
            self._thread = threading.Thread(target=self._loop, name="fmbench-telemetry", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        if self._thread is None or self._stopping.is_set():
            return
        self._stopping.set()
        self._thread.join()
        self.sample()
        if self._owns_gpu:
            self._gpu.close()

    def summary(self, start: float | None = None, end: float | None = None) -> TelemetrySummary:
        """Summary over the readings taken within [start, end] (time.monotonic(); None leaves it open)."""
        return summarize(
            [r for r in self.readings if (start is None or r.time >= start) and (end is None or r.time <= end)]
        )

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
