"""fmbench.space: every adapter's draws follow the declared marginals (drawn, not read from a declaration).

Each adapter draws a few thousand configurations with a fixed seed; each knob's values, where its condition is on,
are tested against the declaration: a grid (or choice) by a chi-square test of uniformity over every value, a
continuous float by a Kolmogorov-Smirnov test on its (log) scale. The seeds are fixed, so each test gives one
answer; the level 1e-3 leaves room for ordinary luck and none for a value never drawn.
"""

from __future__ import annotations

import math

import keras_tuner as kt
import numpy as np
import optuna
import pytest
from scipy import stats

from fmbench import space
from fmbench.models import cnn, mlp
from fmbench.search import optuna as optuna_search
from fmbench.search import sklearn as sklearn_search

DRAWS = 3000
LEVEL = 1e-3


def marginal_failures(declared: space.Space, draws: list[dict]) -> list[str]:
    """What is wrong with each knob's drawn marginal, one line per knob; empty when all fit."""
    failures = []
    for knob in declared.knobs:
        values = [draw[knob.name] for draw in draws if knob.name in draw]
        expected_active = sum(declared.is_active(knob, draw) for draw in draws)
        if len(values) != expected_active:
            failures.append(f"{knob.name}: drawn in {len(values)} configurations, active in {expected_active}")
            continue
        grid = knob.grid
        if grid is not None:
            outside = set(values) - set(grid)
            counts = [sum(value == point for value in values) for point in grid]
            p = stats.chisquare(counts).pvalue
            if outside or p < LEVEL:
                failures.append(f"{knob.name}: counts {dict(zip(grid, counts))}, outside {outside}, p {p:.2g}")
        else:
            scale = np.log if knob.log else np.asarray
            low, high = scale(knob.low), scale(knob.high)
            p = stats.kstest(scale(np.asarray(values)), stats.uniform(low, high - low).cdf).pvalue
            if p < LEVEL:
                failures.append(f"{knob.name}: KS p {p:.2g}")
    return failures


def keras_tuner_draws(hp: kt.HyperParameters, n: int = DRAWS, seed: int = 11) -> list[dict]:
    """n draws of keras-tuner's random oracle (the draws of RandomSearch, Hyperband's new trials and the random
    start of BayesianOptimization) over the declared hyperparameters, inactive values dropped."""
    oracle = kt.oracles.RandomSearchOracle(objective=kt.Objective("score", "max"), max_trials=n, seed=seed)
    oracle.hyperparameters = hp
    draws = []
    for i in range(n):
        response = oracle.populate_space(str(i))
        draws.append(dict(response["values"]))  # the oracle returns the values of active hyperparameters only
    return draws


def mlp_keras_tuner_hp() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    space.declare_keras_tuner(space.MLP, hp)
    return hp


def optuna_draws(n: int = DRAWS, seed: int = 11) -> list[dict]:
    """n draws of Optuna's random sampler (TPE's startup trials draw the same way) through fmbench's suggest."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    draws = []
    for _ in range(n):
        trial = study.ask()
        draws.append(optuna_search.suggest(trial))
        study.tell(trial, 0.0)
    return draws


def test_keras_tuner_draws_every_mlp_value_uniformly() -> None:
    draws = keras_tuner_draws(mlp_keras_tuner_hp())
    assert marginal_failures(space.MLP, [space.MLP.active(d) for d in draws]) == []
    assert any(d.get("dropout_0") == 0.5 for d in draws), "the top dropout is drawn"


def test_optuna_draws_every_mlp_value_uniformly() -> None:
    assert marginal_failures(space.MLP, optuna_draws()) == []


@pytest.mark.parametrize("sampler", ["random", "sobol"])
def test_unit_cube_points_give_the_declared_marginals(sampler: str) -> None:
    dims = len(space.MLP.knobs)
    if sampler == "sobol":
        points = stats.qmc.Sobol(dims, seed=5).random(2048)
    else:
        points = np.random.default_rng(5).random((DRAWS, dims))
    assert marginal_failures(space.MLP, [space.from_unit(space.MLP, point) for point in points]) == []


def test_the_marginal_check_fails_on_keras_tuners_stepped_float() -> None:
    # keras-tuner's own Float(0.0, 0.5, step=0.1), as the space was declared before: 0.5 is never drawn.
    hp = kt.HyperParameters()
    hp.Float("dropout_0", 0.0, 0.5, step=0.1)
    declared = space.Space("one", (space.Knob("dropout_0", "float", 0.0, 0.5, step=0.1),))
    (failure,) = marginal_failures(declared, keras_tuner_draws(hp, n=600))
    assert "0.5: 0" in failure


def test_the_grid_walks_every_declared_value() -> None:
    # keras-tuner's GridSearchOracle enumerates each hyperparameter's `values`: every grid point, once.
    for h in mlp_keras_tuner_hp().space:
        knob = space.MLP[h.name]
        if knob.grid is not None:
            assert tuple(h.values) == knob.grid, h.name
        else:
            assert len(set(h.values)) == 10 and all(knob.low <= v <= knob.high for v in h.values), h.name


def test_the_model_builder_and_the_adapters_share_one_space() -> None:
    hp = kt.HyperParameters()
    mlp.build_model(hp)
    assert [h.name for h in hp.space] == [knob.name for knob in space.MLP.knobs]
    study = optuna.create_study()
    study.enqueue_trial({"num_layers": 5})
    trial = study.ask()
    optuna_search.suggest(trial)
    assert list(trial.params) == [knob.name for knob in space.MLP.knobs]


def test_the_baseline_is_a_point_of_the_space() -> None:
    # The tuned-vs-baseline difference is only the tuning if a tuner could have found the baseline.
    values = space.MLP.active(mlp.BASELINE_HPS)
    assert values == mlp.BASELINE_HPS
    for name, value in values.items():
        knob = space.MLP[name]
        assert value in knob.grid if knob.grid is not None else knob.low <= value <= knob.high, name


def test_the_sklearn_tuners_space_is_drawn_as_declared() -> None:
    hp = kt.HyperParameters()
    space.declare_keras_tuner(sklearn_search.SPACE, hp)
    draws = keras_tuner_draws(hp, n=2000)
    assert marginal_failures(sklearn_search.SPACE, [sklearn_search.SPACE.active(d) for d in draws]) == []


def test_xception_draws_its_top_dropout() -> None:
    # HyperXception's own Float(0.0, 0.6, step=0.1) never draws 0.6; fmbench.models.cnn declares it first.
    hp = kt.HyperParameters()
    with hp.name_scope("xception"):
        space.declare_knob(cnn.XCEPTION_DROPOUT, hp)
        hp.Float("dropout_rate", 0.0, 0.6, step=0.1, default=0.5)  # the application's declaration, now a no-op
    (declared,) = [h for h in hp.space if h.name == "xception/dropout_rate"]
    assert tuple(declared.values) == cnn.XCEPTION_DROPOUT.grid and declared.default == 0.5
    knob = space.Knob("xception/dropout_rate", "float", 0.0, 0.6, step=0.1)
    draws = keras_tuner_draws(hp, n=1400)
    assert marginal_failures(space.Space("x", (knob,)), draws) == []


def test_active_sorts_keys_and_drops_bookkeeping() -> None:
    values = {"learning_rate": 3e-3, "units_1": 64, "dropout_1": 0.1, "num_layers": 1, "units_0": 32, "tuner/epochs": 4}
    assert list(space.MLP.active(values)) == ["learning_rate", "num_layers", "units_0"]


def test_from_unit_maps_quantiles_to_the_ends_of_each_range() -> None:
    assert space.MLP["dropout_0"].value_at(0.999) == 0.5 and space.MLP["dropout_0"].value_at(0.0) == 0.0
    assert space.MLP["learning_rate"].value_at(0.5) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="12 knobs"):
        space.from_unit(space.MLP, [0.5, 0.5])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="float", low=0.0, high=0.5, step=0.15), "whole number of steps"),
        (dict(kind="int", low=1, high=5), "needs a step"),
        (dict(kind="float", low=1.0, high=1.0), "low < high"),
        (dict(kind="float", low=0.1, high=1.0, step=0.1, log=True), "drop log"),
    ],
)
def test_bad_knobs_are_refused_with_the_fix(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        space.Knob("k", **kwargs)


def test_a_condition_must_name_an_earlier_knob() -> None:
    with pytest.raises(ValueError, match="not declared before it"):
        space.Space("s", (space.Knob("a", "int", 1, 3, step=1, active_when=("b", (1,))),))


def test_a_grid_of_tenths_has_exact_values() -> None:
    assert space.MLP["dropout_0"].grid == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
    assert math.isclose(sum(space.MLP["dropout_0"].grid), 1.5)
