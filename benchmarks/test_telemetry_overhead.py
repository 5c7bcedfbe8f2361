"""The telemetry sampler's own cost.

Asserted: one reading costs under TARGET_PERCENT of one core at the sampling interval. Recorded only
(in extra_info): the same short Keras training with and without the sampler, too noisy here to assert.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from fmbench.telemetry import Sampler

TARGET_PERCENT = 1.0  # the most one reading may cost, as a share of one core at the interval
PAIRS = 3


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((5000, 28, 28), dtype=np.float32), rng.integers(0, 10, 5000)


def _train(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Wall and process-CPU seconds of one small fit, built from scratch so every run does the same work."""
    import keras  # lazily: collection stays fast

    keras.utils.set_random_seed(1)
    wall, cpu = time.perf_counter(), time.process_time()
    model = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, batch_size=32, verbose=0)
    return time.perf_counter() - wall, time.process_time() - cpu


def _sampled_train(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    with Sampler():  # the default interval, as a run uses it
        return _train(x, y)


def _per_sample_seconds(n: int = 200) -> float:
    """Direct cost of one reading: with the interval, the sampling thread's share of one core."""
    sampler = Sampler()
    start = time.perf_counter()
    for _ in range(n):
        sampler.sample()
    return (time.perf_counter() - start) / n


def _percent(with_: float, without: float) -> float:
    return round(100 * (with_ - without) / without, 2)


def test_sampler_overhead_on_training(benchmark):
    x, y = _data()
    _train(x, y)  # warm-up: TF's first fit pays one-off tracing and thread-pool start

    def compare() -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        plain: list[tuple[float, float]] = []
        sampled: list[tuple[float, float]] = []
        for pair in range(PAIRS):
            # Alternate which goes first, so slow drift of the machine hits both sides alike.
            runs = [(plain, _train), (sampled, _sampled_train)]
            for times, fn in runs if pair % 2 == 0 else reversed(runs):
                times.append(fn(x, y))
        return plain, sampled

    plain, sampled = benchmark.pedantic(compare, rounds=1, iterations=1)
    wall_without, wall_with = [w for w, _ in plain], [w for w, _ in sampled]
    cpu_without, cpu_with = [c for _, c in plain], [c for _, c in sampled]
    without, with_ = statistics.median(wall_without), statistics.median(wall_with)
    # Each pair ran back to back, so its ratio is free of the machine's slow drift.
    paired = round(statistics.median(100 * (a - b) / b for a, b in zip(wall_with, wall_without)), 2)
    # How far identical runs without the sampler differ: below this, no difference is resolvable.
    noise = _percent(max(wall_without), min(wall_without))
    per_sample = _per_sample_seconds()
    share = round(100 * per_sample / Sampler().interval, 3)
    benchmark.extra_info.update(
        {
            "median_seconds_without_sampler": round(without, 3),
            "median_seconds_with_sampler": round(with_, 3),
            "overhead_percent": _percent(with_, without),
            "paired_overhead_percent_median": paired,
            "cpu_seconds_overhead_percent": _percent(statistics.median(cpu_with), statistics.median(cpu_without)),
            "noise_percent": noise,
            "seconds_without_sampler": [round(t, 3) for t in wall_without],
            "seconds_with_sampler": [round(t, 3) for t in wall_with],
            "overhead_target_percent": TARGET_PERCENT,
            "sample_microseconds": round(1e6 * per_sample, 1),
            "sampling_share_of_one_core_percent": share,
        }
    )
    # The direct cost is steady on any machine: it is the gate that catches a slower sample().
    # The end-to-end figures are recorded, never asserted: on this class of shared VM identical fits
    # vary by 20-60%, so a few pairs cannot resolve a 1% effect either way.
    assert share < TARGET_PERCENT, str(benchmark.extra_info)
