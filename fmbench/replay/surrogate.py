"""A surrogate of a table: scikit-learn models of validation and test accuracy at (configuration, epoch), of a
fit's seconds, and of the seed noise, learnt from the configurations trained with several weight seeds.

The seed noise has a size that depends on the configuration: one that trains well is steady across seeds, one on
the edge of diverging is not (in the table's 100 noise configurations, the final validation accuracy's seed sd
ran from 0.03 points to 9.6, median 0.27, pooled 1.37), so one pooled sd would drown the good configurations'
differences in noise. The seed variance at an epoch is the mean of the seeds' variances of the NOISE_NEIGHBOURS noise
configurations whose mean accuracy at that epoch is nearest (k-nearest-neighbour regression, applied at the
surrogate's mean accuracy): how noisy a configuration is follows how well it trains, and a mean of unbiased
variances is unbiased. Local averages on purpose: a variance from three seeds is itself noisy (its sd equals its
mean); on synthetic tables gradient boosting fitted those draws (a constant seed sd of 2 points came back as 0.9 for
one configuration) and a Poisson regression on splines drove the best configurations' sd towards 0, where tuners
choose.

And a seed does not shift a whole curve alike: in the table's noise configurations, a seed's deviation at epochs 1
to 9, divided by its modelled sd, correlated -0.01 to 0.28 with its deviation at epoch 10 (results/replay-table/
fidelity.md). `sample` draws a seed's standardised deviations at every epoch at once, normal with the correlation
between epochs measured on the noise configurations, from the generator it is given, and scales the epoch's by the
modelled sd; validation and test share them (their standardised final deviations correlate 0.93). A replay that
hands it a generator seeded the same way at every epoch gets one consistent curve per seed, whose early epochs
(Hyperband's rungs) say as little of its end as real seeds'.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import ExtraTreesRegressor, HistGradientBoostingRegressor
from sklearn.neighbors import KNeighborsRegressor
from threadpoolctl import ThreadpoolController

from fmbench.data import NUM_CLASSES
from fmbench.replay.table import Table
from fmbench.space import MAX_LAYERS

IMAGE_PIXELS = 28 * 28
ACCURACIES = {"val": "val_accuracy", "test": "test_accuracy"}
SECONDS = ("build", "compile", "epoch", "score")
NOISE_NEIGHBOURS = 15  # noise configurations averaged per seed variance: its sd within about 13% where noise is even


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


@dataclass(frozen=True)
class SeedVariances:
    """Per configuration measured with several seeds (one row each, in config_id order): its position of first
    appearance in the table, its degrees of freedom (seeds - 1), and per accuracy its seeds' variance at each epoch
    (ddof=1: unbiased for the seed variance)."""

    config_ids: np.ndarray
    positions: np.ndarray
    dof: np.ndarray
    variance: dict  # "val" / "test" -> (configurations, epochs)


def seed_variances(table: Table) -> SeedVariances:
    ids = table.rows["config_id"].to_numpy()
    counts = table.rows.groupby("config_id")["seed"].transform("size").to_numpy()
    noisy = np.unique(ids[counts > 1])
    positions = np.array([np.flatnonzero(ids == g)[0] for g in noisy], dtype=int)
    variance = {}
    for name, series in ACCURACIES.items():
        values = table.series(series)
        by_config = [values[ids == g].var(axis=0, ddof=1) for g in noisy]
        variance[name] = np.array(by_config).reshape(len(noisy), table.settings.epochs)
    dof = np.array([(ids == g).sum() - 1 for g in noisy], dtype=float)
    return SeedVariances(noisy, positions, dof, variance)


def pooled_seed_sd(variances: SeedVariances) -> dict[str, np.ndarray]:
    """Per epoch, the one seed sd a model blind to the configuration would use: the root of the configurations'
    mean variance (zeros where no configuration has several seeds)."""
    return {name: np.sqrt(v.mean(axis=0)) if len(v) else np.zeros(v.shape[1]) for name, v in variances.variance.items()}


def _one_thread():
    """scikit-learn's OpenMP at one thread: its workers spin while they wait, and on a busy 2-core machine a fit on
    840 rows took 15 s with two threads against 0.3 s with one, a one-row prediction about 18 ms against 1 ms. A table
    is small enough for one thread."""
    return _thread_pools().limit(limits=1, user_api="openmp")


@functools.cache
def _thread_pools() -> ThreadpoolController:
    # Found once: finding the loaded libraries walks them all, and per call that was a fifth of a replayed random
    # search's time (cProfile). scikit-learn, and with it its OpenMP, is loaded before this module's first call.
    return ThreadpoolController()


def _regressor(random_state: int) -> HistGradientBoostingRegressor:
    # Seeded: with more than 10,000 samples it holds out a random share for early stopping.
    return HistGradientBoostingRegressor(random_state=random_state)


def _log_error(accuracy):
    """An accuracy as the log of its error rate (1 - accuracy, kept above 0): the top, where tuners choose, is spread
    out, and a configuration that diverged (accuracy near 0.1) no longer weighs like hundreds of good ones."""
    return np.log(1.001 - np.asarray(accuracy))


def _accuracy_of(log_error):
    return 1.001 - np.exp(log_error)


def _on_log_error(regressor) -> TransformedTargetRegressor:
    return TransformedTargetRegressor(
        regressor=regressor, func=_log_error, inverse_func=_accuracy_of, check_inverse=False
    )


def _slow_boosting(random_state: int) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        learning_rate=0.05, max_iter=300, min_samples_leaf=10, random_state=random_state
    )


# The models of accuracy at (configuration, epoch) that `fmbench table fit --compare` judges on held-out
# configurations; MODEL is the one a replay uses, chosen on the whole table by a rule fixed before that comparison
# was seen (docs/replay.md, "The surrogate"): the highest mean held-out final-validation R^2; within 0.01 of it,
# the smallest top-quarter measured-minus-predicted in size.
MODELS: dict[str, Callable[[int], object]] = {
    "boosting": _regressor,
    "boosting, slower": _slow_boosting,
    "boosting, slower, on log error": lambda random_state: _on_log_error(_slow_boosting(random_state)),
    "extra trees, on log error": lambda random_state: _on_log_error(
        ExtraTreesRegressor(n_estimators=200, min_samples_leaf=2, random_state=random_state, n_jobs=1)
    ),
}
MODEL = "extra trees, on log error"


def _curve_x(configs: list[list[float]], epochs: int) -> np.ndarray:
    """Rows of features + [epoch], configuration by configuration, epochs 1..epochs each."""
    return np.array([[*x, epoch] for x in configs for epoch in range(1, epochs + 1)])


def fit_noise(table: Table) -> dict:
    """ "val" / "test" -> per epoch (index epoch - 1) a model of the seed variance at a mean accuracy, or None where
    no configuration was measured with several seeds, or none of them varied."""
    measured = seed_variances(table)
    ids = table.rows["config_id"].to_numpy()
    neighbours = min(NOISE_NEIGHBOURS, len(measured.config_ids))
    models = {}
    for name, series in ACCURACIES.items():
        values = table.series(series)
        means = np.array([values[ids == g].mean(axis=0) for g in measured.config_ids])
        variance = measured.variance[name]
        if not variance.sum() > 0:
            models[name] = None
            continue
        models[name] = [
            KNeighborsRegressor(n_neighbors=neighbours).fit(means[:, [e]], variance[:, e])
            for e in range(table.settings.epochs)
        ]
    return models


@dataclass(frozen=True)
class Surrogate:
    """Fitted models of one table: accuracy at (configuration, epoch), a fit's seconds, and the seed noise."""

    epochs: int
    accuracy: dict  # "val" / "test" -> regressor on features + [epoch]
    seconds: dict  # SECONDS name -> regressor on features
    noise: dict  # "val" / "test" -> per epoch, a model of the seed variance at a mean accuracy; None: no noise measured
    epoch_mixing: np.ndarray  # (epochs, epochs) lower-triangular: standard normals -> a seed's correlated deviations
    # configuration -> its curve, (val, test, val sd, test sd) at every epoch: a replay asks again at every epoch of
    # every fit of a configuration, and a model's prediction costs per call more than per row (a tree ensemble walks
    # each of its trees per call), so a configuration's curve is predicted in one call per model, once.
    _curves: dict = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, table: Table, random_state: int = 0, model: str = MODEL) -> Surrogate:
        """The surrogate of `table`, its accuracy modelled by MODELS[model]."""
        epochs = table.settings.epochs
        configs = [features(table.config(i)) for i in range(len(table.rows))]
        curve_x = _curve_x(configs, epochs)
        with _one_thread():
            accuracy = {
                name: MODELS[model](random_state).fit(curve_x, table.series(series).reshape(-1))
                for name, series in ACCURACIES.items()
            }
            first = first_fits(table)
            seconds = {
                name: _regressor(random_state).fit(np.array(configs)[first], values[first])
                for name, values in row_seconds(table).items()
            }
            noise = fit_noise(table)
        surrogate = cls(epochs, accuracy, seconds, noise, np.eye(epochs))
        return dataclasses.replace(surrogate, epoch_mixing=np.linalg.cholesky(surrogate._epoch_correlation(table)))

    def mean(self, configs: list[dict], epoch: int, which: str = "val") -> np.ndarray:
        """The predicted seed-mean accuracy of each configuration after `epoch` epochs, within [0, 1]."""
        self._check_epoch(epoch)
        x = np.array([[*features(config), epoch] for config in configs])
        with _one_thread():
            return np.clip(self.accuracy[which].predict(x), 0.0, 1.0)

    def noise_sd(self, configs: list[dict], epoch: int, which: str = "val") -> np.ndarray:
        """The modelled seed sd of each configuration's accuracy after `epoch` epochs, at its predicted mean."""
        return self._sd_at(self.mean(configs, epoch, which), epoch, which)

    def _sd_at(self, means: np.ndarray, epoch: int, which: str) -> np.ndarray:
        """The modelled seed sd after `epoch` epochs of configurations whose mean accuracies are `means`."""
        if self.noise[which] is None:
            return np.zeros(len(means))
        with _one_thread():
            return np.sqrt(self.noise[which][epoch - 1].predict(np.asarray(means)[:, None]))

    def sample(self, config: dict, epoch: int, rng: np.random.Generator) -> tuple[float, float]:
        """(validation, test) accuracy of one seed of `config` after `epoch` epochs: the mean plus the seed's
        deviation at that epoch, one draw of its whole curve's from `rng`, shared by both sets."""
        self._check_epoch(epoch)
        z = (self.epoch_mixing @ rng.standard_normal(self.epochs))[epoch - 1]
        key = tuple(sorted(config.items()))
        if key not in self._curves:
            self._curves[key] = self._curve(config)
        val, test, val_sd, test_sd = (series[epoch - 1] for series in self._curves[key])
        return float(np.clip(val + z * val_sd, 0, 1)), float(np.clip(test + z * test_sd, 0, 1))

    def _curve(self, config: dict) -> tuple[np.ndarray, ...]:
        """(val, test, val sd, test sd) of `config` at epochs 1..epochs, each accuracy model asked once."""
        x = np.array([[*features(config), epoch] for epoch in range(1, self.epochs + 1)])
        with _one_thread():
            means = {which: np.clip(self.accuracy[which].predict(x), 0.0, 1.0) for which in ACCURACIES}
            sds = {
                which: np.array([self._sd_at(means[which][[e - 1]], e, which)[0] for e in range(1, self.epochs + 1)])
                for which in ACCURACIES
            }
        return (*means.values(), *sds.values())

    def _epoch_correlation(self, table: Table) -> np.ndarray:
        """The correlation between epochs of the noise configurations' seeds' validation deviations from their
        configuration's mean, each divided by its modelled sd; the identity where there are too few to estimate it
        (or nothing varies), nudged to positive definite where the estimate is not."""
        measured = seed_variances(table)
        ids = table.rows["config_id"].to_numpy()
        values = table.series("val_accuracy")
        configs = [table.config(int(position)) for position in measured.positions]
        sds = np.column_stack([self.noise_sd(configs, e) for e in range(1, self.epochs + 1)]) if configs else []
        standardised = []
        for g, sd in zip(measured.config_ids, sds):
            own = values[ids == g]
            standardised.append((own - own.mean(axis=0)) / np.where(sd > 0, sd, np.inf))
        rows = np.concatenate(standardised) if standardised else np.empty((0, self.epochs))
        if len(rows) <= self.epochs or not (rows.std(axis=0) > 0).all():
            return np.eye(self.epochs)
        eigenvalues, vectors = np.linalg.eigh(np.corrcoef(rows, rowvar=False))
        clipped = (vectors * np.maximum(eigenvalues, 1e-6)) @ vectors.T
        scale = np.sqrt(np.diag(clipped))
        return clipped / np.outer(scale, scale)

    def fit_seconds(self, config: dict) -> FitSeconds:
        x = np.array([features(config)])
        with _one_thread():
            return FitSeconds(**{name: max(0.0, float(self.seconds[name].predict(x)[0])) for name in SECONDS})

    def _check_epoch(self, epoch: int) -> None:
        if not 1 <= epoch <= self.epochs:
            raise ValueError(f"the table measured epochs 1..{self.epochs}, not {epoch}")
