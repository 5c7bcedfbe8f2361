"""A surrogate of a table: scikit-learn models of validation and test accuracy at (configuration, epoch) and of a
fit's seconds, with the seed noise measured from the configurations trained with several weight seeds.

The noise model: a seed shifts a whole curve. `sample` draws one standard normal z from the generator it is given
and adds z times the measured per-epoch seed sd to both accuracies, so a replay that hands it a generator seeded
the same way at every epoch gets one consistent curve per seed (fidelity.py reports how far the measured seed
deviations of an epoch and the last really go together).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from fmbench.data import NUM_CLASSES
from fmbench.replay.table import Table
from fmbench.space import MAX_LAYERS

IMAGE_PIXELS = 28 * 28
ACCURACIES = {"val": "val_accuracy", "test": "test_accuracy"}
SECONDS = ("build", "compile", "epoch", "score")


def features(config: dict) -> list[float]:
    """A configuration as numbers: layer count, each layer's units and dropout (0 where the layer is absent), the
    learning rate's log, and the log of the weight count, which sets an epoch's arithmetic."""
    layers = int(config["num_layers"])
    units = [float(config[f"units_{i}"]) if i < layers else 0.0 for i in range(MAX_LAYERS)]
    dropout = [float(config[f"dropout_{i}"]) if i < layers else 0.0 for i in range(MAX_LAYERS)]
    widths = [IMAGE_PIXELS, *units[:layers], NUM_CLASSES]
    weights = sum(a * b for a, b in zip(widths, widths[1:]))
    return [layers, *units, *dropout, math.log10(float(config["learning_rate"])), math.log10(weights)]


@dataclass(frozen=True)
class FitSeconds:
    """What a fit of one configuration costs: making the model, the first epoch's trace beyond a later epoch, a
    later epoch, and the first scoring of the validation set."""

    build: float
    compile: float
    epoch: float
    score: float


def first_fits(table: Table) -> np.ndarray:
    """Which rows are their configuration's first fit (its lowest seed), the rows whose seconds a replay uses. A
    build measures a configuration's seeds one after another, and the later ones find its shapes compiled (JAX's
    cache: a tiny build measured model builds of 1.6 to 2.6 s for seed 1, 0.02 to 0.04 s for seeds 2 and 3), as a
    search's new configurations do not."""
    seeds = table.rows["seed"].to_numpy()
    return seeds == table.rows.groupby("config_id")["seed"].transform("min").to_numpy()


def row_seconds(table: Table) -> dict[str, np.ndarray]:
    """Each row's FitSeconds fields as arrays. A one-epoch table has no later epoch to tell the trace from: its
    compile seconds are 0 and its epoch seconds the first epoch's."""
    epochs = table.series("epoch_seconds")
    steady = np.median(epochs[:, 1:], axis=1) if epochs.shape[1] > 1 else epochs[:, 0]
    return {
        "build": table.rows["build_seconds"].to_numpy(dtype=float),
        "compile": np.nan_to_num(table.rows["compile_seconds"].to_numpy(dtype=float)),
        "epoch": steady,
        "score": table.rows["score_seconds"].to_numpy(dtype=float),
    }


def seed_noise(table: Table) -> tuple[dict[str, np.ndarray], int]:
    """Per-epoch seed sd of each accuracy, pooled over the configurations measured with several seeds (the root of
    their mean variance, ddof=1), and how many such configurations there are; zeros where there are none."""
    counts = table.rows.groupby("config_id")["seed"].transform("size").to_numpy()
    several = counts > 1
    noise = {}
    for name, series in ACCURACIES.items():
        values = table.series(series)[several]
        if not several.any():
            noise[name] = np.zeros(table.settings.epochs)
            continue
        groups = table.rows["config_id"].to_numpy()[several]
        variances = [np.var(values[groups == g], axis=0, ddof=1) for g in np.unique(groups)]
        noise[name] = np.sqrt(np.mean(variances, axis=0))
    return noise, int(len(np.unique(table.rows["config_id"].to_numpy()[several])))


def _one_thread():
    """scikit-learn's OpenMP at one thread: its workers spin while they wait, and on a busy 2-core machine a fit on
    840 rows took 15 s with two threads against 0.3 s with one, a one-row prediction about 18 ms against 1 ms. A table
    is small enough for one thread."""
    return threadpool_limits(limits=1, user_api="openmp")


def _regressor(random_state: int) -> HistGradientBoostingRegressor:
    # Seeded: with more than 10,000 samples it holds out a random share for early stopping.
    return HistGradientBoostingRegressor(random_state=random_state)


@dataclass(frozen=True)
class Surrogate:
    """Fitted models of one table: accuracy at (configuration, epoch), a fit's seconds, and the seed noise."""

    epochs: int
    accuracy: dict  # "val" / "test" -> regressor on features + [epoch]
    seconds: dict  # SECONDS name -> regressor on features
    noise_sd: dict  # "val" / "test" -> per-epoch sd, index epoch - 1

    @classmethod
    def fit(cls, table: Table, random_state: int = 0) -> Surrogate:
        epochs = table.settings.epochs
        configs = [features(table.config(i)) for i in range(len(table.rows))]
        curve_x = np.array([[*x, epoch] for x in configs for epoch in range(1, epochs + 1)])
        with _one_thread():
            accuracy = {
                name: _regressor(random_state).fit(curve_x, table.series(series).reshape(-1))
                for name, series in ACCURACIES.items()
            }
            first = first_fits(table)
            seconds = {
                name: _regressor(random_state).fit(np.array(configs)[first], values[first])
                for name, values in row_seconds(table).items()
            }
        return cls(epochs, accuracy, seconds, seed_noise(table)[0])

    def mean(self, configs: list[dict], epoch: int, which: str = "val") -> np.ndarray:
        """The predicted seed-mean accuracy of each configuration after `epoch` epochs, within [0, 1]."""
        self._check_epoch(epoch)
        x = np.array([[*features(config), epoch] for config in configs])
        with _one_thread():
            return np.clip(self.accuracy[which].predict(x), 0.0, 1.0)

    def sample(self, config: dict, epoch: int, rng: np.random.Generator) -> tuple[float, float]:
        """(validation, test) accuracy of one seed of `config` after `epoch` epochs: the mean plus one draw of the
        seed noise, shared by both sets (a seed that trains well does so on both)."""
        z = rng.standard_normal()
        val, test = (
            float(np.clip(self.mean([config], epoch, which)[0] + z * self.noise_sd[which][epoch - 1], 0.0, 1.0))
            for which in ("val", "test")
        )
        return val, test

    def fit_seconds(self, config: dict) -> FitSeconds:
        x = np.array([features(config)])
        with _one_thread():
            return FitSeconds(**{name: max(0.0, float(self.seconds[name].predict(x)[0])) for name in SECONDS})

    def _check_epoch(self, epoch: int) -> None:
        if not 1 <= epoch <= self.epochs:
            raise ValueError(f"the table measured epochs 1..{self.epochs}, not {epoch}")
