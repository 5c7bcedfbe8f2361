"""fmbench.search.sklearn: the SklearnTuner row and its scikit-learn baseline, on the tiny subset (seconds)."""

from __future__ import annotations

import keras_tuner as kt
import pytest
from sklearn import ensemble, linear_model

from fmbench import profiles, protocol
from fmbench.search import base
from fmbench.search import sklearn as sklearn_search
from fmbench.spec import Budget, RunSpec, SpecError


def _run(tuner: str, split, **budget):
    spec = RunSpec(tuner=tuner, seed=1, budget=Budget(**budget), epochs=1, batch_size=64, profile="test")
    return protocol.run(spec, split, progress=lambda line: None)


def test_space_is_one_model_family_at_a_time() -> None:
    hp = kt.HyperParameters()
    model = sklearn_search.build_model(hp, seed=1)
    assert isinstance(model, linear_model.SGDClassifier) and model.loss == "log_loss"
    active = {h.name for h in hp.space if hp.is_active(h)}
    assert active == {"model", "alpha"}, "a forest's knobs are inactive for the linear model"
    hp = kt.HyperParameters()
    hp.values["model"] = "random_forest"
    model = sklearn_search.build_model(hp, seed=1)
    assert isinstance(model, ensemble.RandomForestClassifier) and model.random_state == 1
    assert {h.name for h in hp.space if hp.is_active(h)} == {"model", "n_estimators", "max_depth"}
    assert {h.name for h in hp.space} == {"model", "alpha", "n_estimators", "max_depth"}, "declared before a trial"


def test_baseline_is_scikit_learn_default_logistic_regression() -> None:
    model = sklearn_search.make_model(sklearn_search.BASELINE_VALUES, seed=1)
    assert isinstance(model, linear_model.LogisticRegression)
    assert model.get_params() == linear_model.LogisticRegression().get_params()


def test_the_baseline_needs_no_budget_and_the_tuner_does() -> None:
    assert RunSpec(tuner="sklearn-baseline", seed=1).cell == "sklearn-baseline-seed1"
    with pytest.raises(SpecError, match="needs a budget"):
        RunSpec(tuner="sklearn", seed=1)
    with pytest.raises(SpecError, match="trains no epochs"):
        RunSpec(tuner="sklearn", seed=1, budget=Budget(max_epochs=12))


def test_an_epoch_budget_has_no_sklearn_cell() -> None:
    specs = profiles.get_profile("smoke").expand(("sklearn",), (1,))
    assert {s.budget.label for s in specs if s.tuner == "sklearn"} == {"trials4", "time20s"}


@pytest.mark.e2e
def test_sklearn_search_row_on_the_tiny_subset(subset_split) -> None:
    result = _run("sklearn", subset_split, max_trials=3)
    assert result.error == "" and result.stopped_by == "trials"
    assert [t.status for t in result.trials] == ["COMPLETED"] * 3 and result.trials_completed == 3
    assert all(t.epochs == 0 and 0 < t.val_accuracy <= 1 for t in result.trials)
    assert result.best_val_accuracy == max(t.val_accuracy for t in result.trials)
    assert result.best_hyperparameters in [t.hyperparameters for t in result.trials]
    assert result.num_initial_points == base.initial_points(result.spec)
    assert 0.3 < result.test_accuracy <= 1 and result.test_loss > 0
    assert result.retrain_epochs == 0 and result.retrain_seconds > 0


@pytest.mark.e2e
def test_sklearn_baseline_row_on_the_tiny_subset(subset_split) -> None:
    result = _run("sklearn-baseline", subset_split)
    assert result.error == "" and result.trials == ()
    assert result.best_hyperparameters == sklearn_search.BASELINE_VALUES
    assert 0.3 < result.best_val_accuracy <= 1 and 0.3 < result.test_accuracy <= 1
