"""tests/conftest.py's guard: a test not marked e2e cannot train a model, and an e2e test trains as it always did.

One pytest session, in this process, runs a copy of the conftest on a test file whose `keras` is a stand-in (no
training, no Keras import); the real libraries' entry points are checked as this very test sees them.
"""

from __future__ import annotations

from pathlib import Path

import keras
import pytest

from fmbench.models import mlp
from fmbench.search import sklearn as sklearn_search

TRAINS = "this test trains a model: mark it @pytest.mark.e2e (tests/conftest.py)"

INNER_TESTS = """
import sys
import types

import pytest


class Model:
    def fit(self, *args, **kwargs):
        return "trained"

    def train_on_batch(self, *args, **kwargs):
        return "trained"


sys.modules["keras"] = types.SimpleNamespace(Model=Model)  # what the guard looks up: keras.Model


def test_an_unmarked_fit():
    Model().fit()


def test_an_unmarked_fit_whose_refusal_is_caught():
    try:
        Model().fit()
    except AssertionError:
        pass  # as keras-tuner records a failed trial and goes on


def test_an_unmarked_test_that_only_builds():
    Model()


@pytest.mark.e2e
def test_a_marked_fit_after_the_refused_ones():
    assert Model().fit() == "trained"
"""


def test_the_guard_fails_unmarked_fits_and_lets_marked_ones_train(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers =\n    e2e: trains\n")
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, failed=2)
    failed = {report.nodeid.split("::")[1]: str(report.longrepr) for report in result.reprec.getfailures()}
    assert set(failed) == {"test_an_unmarked_fit", "test_an_unmarked_fit_whose_refusal_is_caught"}
    assert all(TRAINS in text for text in failed.values())
    caught = failed["test_an_unmarked_fit_whose_refusal_is_caught"]
    assert "Model.fit, and the code under test caught the refusal" in caught


def test_this_unmarked_test_sees_every_training_entry_point_refusing() -> None:
    # The classes fmbench trains: a Sequential MLP (fmbench.models.training.fit calls its fit), and scikit-learn's.
    model = mlp.make_model(mlp.BASELINE_HPS)
    assert getattr(type(model).fit, "refuses_training", False)
    assert getattr(keras.Model.train_on_batch, "refuses_training", False)
    for values in (sklearn_search.BASELINE_VALUES, {"model": "sgd", "alpha": 1e-4}):
        assert getattr(type(sklearn_search.make_model(values, seed=1)).fit, "refuses_training", False), values
    forest = sklearn_search.make_model({"model": "random_forest", "n_estimators": 10, "max_depth": 4}, seed=1)
    assert getattr(type(forest).fit, "refuses_training", False)
