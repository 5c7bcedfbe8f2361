"""Which configurations a table measures: an even cover of the declared MLP space (a scrambled Sobol sequence read
through the space's own `from_unit`), the weight seeds each one gets, a shard's share of them, and a build's Plan."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from scipy.stats import qmc

from fmbench.space import MLP, Space, from_unit
from fmbench.spec import SpecError

# Fixed, so configuration k is the same point in every build, shard and resume of a table.
SOBOL_SEED = 20250101
NOISE_CONFIGS = 100  # configurations trained with several seeds by default: enough to pool a per-epoch sd
# The hard-coded baseline model is a point of the space no Sobol draw hits (its learning rate is one value of a
# continuous range), yet every replayed run compares against it: measured with many seeds, a replay's baseline is
# the table's own fits, not a prediction whose error would shift every tuner's difference from it.
BASELINE_ID = -1  # its rows' config_id: no position of the Sobol sequence
BASELINE_SEEDS = 20


def draw(count: int, seed: int = SOBOL_SEED, space: Space = MLP) -> list[dict]:
    """The first `count` configurations of the space's scrambled Sobol sequence, as active values. Configuration k
    is the sequence's k-th point whatever `count` is, so a larger table extends a smaller one."""
    sobol = qmc.Sobol(d=len(space.knobs), scramble=True, seed=seed)
    with warnings.catch_warnings():
        # scipy asks for a power of 2 (the balance of the whole point set); a prefix is what lets a table grow,
        # and a Sobol prefix still covers the cube far more evenly than uniform draws.
        warnings.filterwarnings("ignore", "The balance properties of Sobol", UserWarning)
        points = sobol.random(count) if count else []
    return [space.active(from_unit(space, point)) for point in points]


def seeds_of(config_id: int, noise_configs: int, noise_seeds: int) -> tuple[int, ...]:
    """The weight seeds a configuration is trained with: the first `noise_configs` configurations (themselves an even
    cover of the space) get seeds 1..noise_seeds, to measure seed noise; the others seed 1 only."""
    return tuple(range(1, noise_seeds + 1)) if config_id < noise_configs else (1,)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N): shard K of N, 1 <= K <= N."""
    fix = "give --shard K/N with whole numbers 1 <= K <= N, e.g. --shard 2/4"
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise SpecError(f"--shard {text!r} is not K/N: {fix}") from None
    if not 1 <= k <= n:
        raise SpecError(f"--shard {text!r} is out of range: {fix}")
    return k, n


def shard_ids(count: int, shard: tuple[int, int]) -> list[int]:
    """Configuration ids 0..count-1 of shard K of N: every N-th, starting at K-1, so shards partition the table and
    each covers the space evenly."""
    k, n = shard
    return list(range(k - 1, count, n))


@dataclass(frozen=True)
class Plan:
    """What one build measures: shard K of N of the first `configs` configurations of the Sobol cover, the first
    `noise_configs` of them with weight seeds 1..noise_seeds (the rest with seed 1), `epochs` epochs each; shard 1
    also measures the baseline model with weight seeds 1..baseline_seeds, first."""

    configs: int
    noise_configs: int
    noise_seeds: int
    shard: tuple[int, int] = (1, 1)
    baseline_seeds: int = 0
    epochs: int = 10
    batch_size: int = 128

    def __post_init__(self) -> None:
        if self.configs < 1:
            raise SpecError(f"--configs must be >= 1, got {self.configs}")
        if not 0 <= self.noise_configs <= self.configs:
            raise SpecError(f"--noise-configs must be in 0..--configs ({self.configs}), got {self.noise_configs}")
        if self.noise_configs and self.noise_seeds < 2:
            raise SpecError(f"--noise-seeds must be >= 2 to measure seed noise, got {self.noise_seeds}")
        if self.baseline_seeds < 0:
            raise SpecError(f"--baseline-seeds must be >= 0, got {self.baseline_seeds}")
        if self.epochs < 1 or self.batch_size < 1:
            raise SpecError(f"epochs and batch size must be >= 1, got {self.epochs} and {self.batch_size}")

    def pairs(self) -> list[tuple[int, int]]:
        """(configuration id, weight seed) of this shard, in the order they are measured."""
        baseline = [(BASELINE_ID, seed) for seed in range(1, self.baseline_seeds + 1)] if self.shard[0] == 1 else []
        return baseline + [
            (config_id, seed)
            for config_id in shard_ids(self.configs, self.shard)
            for seed in seeds_of(config_id, self.noise_configs, self.noise_seeds)
        ]
