"""A tuned classical model: keras-tuner's SklearnTuner with its Bayesian oracle, and a default scikit-learn baseline.

`sklearn` searches a small scikit-learn space (a linear SGD classifier's regularisation, or a random forest's
trees and depth) by 3-fold stratified cross-validation on the training split, under the same trial and time
budgets as the Keras tuners; the best model is refit on the whole training split and tested once.
`sklearn-baseline` is scikit-learn's LogisticRegression with every default, through the same refit and test.
They answer "how far does a tuned classical model get, and at what cost" next to the neural rows.

scikit-learn fits cannot be interrupted: under a time budget no trial starts after the deadline, but a
running one finishes, and the row's time_overrun_seconds says by how much. No epochs exist here, so trials
record 0 epochs.
"""

from __future__ import annotations

import functools
import time
import warnings

import keras_tuner as kt
import numpy as np
from sklearn import ensemble, exceptions, linear_model, metrics, model_selection

from fmbench import space, telemetry
from fmbench.budget import SearchClock
from fmbench.data import Split
from fmbench.models.trainer import Trained, Trainer
from fmbench.search.base import BudgetedOracle, Progress, RecordingTuner, initial_points, last_line, summarize_search
from fmbench.spec import RunSpec, SearchOutcome

BASELINE_VALUES = {"model": "logistic_regression"}  # scikit-learn's defaults: C=1.0, lbfgs, max_iter=100
CV_FOLDS = 3


def make_model(values: dict, seed: int):
    """An unfitted scikit-learn classifier from plain hyperparameter values (keys as in build_model)."""
    if values["model"] == "logistic_regression":
        return linear_model.LogisticRegression()
    if values["model"] == "sgd":
        # Logistic loss: a linear model like the baseline's, with probabilities for the test loss.
        return linear_model.SGDClassifier(loss="log_loss", alpha=float(values["alpha"]), random_state=seed)
    return ensemble.RandomForestClassifier(
        n_estimators=int(values["n_estimators"]), max_depth=int(values["max_depth"]), random_state=seed, n_jobs=1
    )


# A linear SGD classifier's L2 strength, or a random forest's size and depth. The forest is kept small: three folds
# of a 100-tree forest take about a minute on quick's 6,000 images, one core.
SPACE = space.Space(
    "sklearn",
    (
        space.Knob("model", "choice", choices=("sgd", "random_forest")),
        space.Knob("alpha", "float", 1e-6, 1e-1, log=True, active_when=("model", ("sgd",))),
        space.Knob("n_estimators", "int", 10, 100, step=10, active_when=("model", ("random_forest",))),
        space.Knob("max_depth", "int", 4, 20, step=4, active_when=("model", ("random_forest",))),
    ),
)


def build_model(hp: kt.HyperParameters, seed: int):
    """keras-tuner hypermodel of SPACE."""
    return make_model(space.declare_keras_tuner(SPACE, hp), seed)


class _Oracle(BudgetedOracle, kt.oracles.BayesianOptimizationOracle):
    pass


class _Tuner(RecordingTuner, kt.SklearnTuner):
    """SklearnTuner that times and records each trial as fmbench's Keras tuners do (no epochs: 0)."""

    score_name = "cv_acc"


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)


def search(
    spec: RunSpec, split: Split, trainer: Trainer, workdir: str, sampler: telemetry.Sampler, progress: Progress
) -> SearchOutcome:
    """search.base.Searcher for `sklearn`: a Bayesian search by cross-validation. Its trials are keras-tuner's
    SklearnTuner's own cross-validated fits; `trainer` (a SklearnTrainer) retrains the best afterwards."""
    clock = SearchClock(spec.budget)
    oracle = _Oracle(
        objective=kt.Objective("score", "max"),
        max_trials=None,
        num_initial_points=initial_points(spec),
        seed=spec.search_seed,
    )
    oracle.clock, oracle.verbose = clock, 0  # our progress lines, not keras-tuner's tables
    tuner = _Tuner(
        oracle=oracle,
        hypermodel=functools.partial(build_model, seed=spec.weight_seed),
        scoring=metrics.make_scorer(metrics.accuracy_score),
        cv=model_selection.StratifiedKFold(CV_FOLDS, shuffle=True, random_state=spec.search_seed),
        directory=workdir,
        project_name="search",
        overwrite=True,
    )
    tuner.start_recording(sampler, clock.started, spec.cell, progress)
    progress(
        f"[{spec.cell}] search: SklearnTuner (Bayesian), budget {spec.budget.label}, {CV_FOLDS}-fold CV on "
        "the training split"
    )
    error = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
            tuner.search(_flat(split.x_train), split.y_train)
    except RuntimeError as exc:  # keras-tuner gives up after consecutive failed trials
        error = f"search stopped: {last_line(str(exc))}"
    return summarize_search(spec, clock, tuple(tuner.records), error)


class SklearnTrainer:
    """fmbench.models.trainer's seam for scikit-learn models: one fit on the whole training split (no epochs),
    scored by accuracy and log loss; `sklearn-baseline`'s fixed model is scikit-learn's default LogisticRegression."""

    baseline = BASELINE_VALUES
    clock = time.monotonic

    def __init__(self, spec: RunSpec):
        self._seed = spec.weight_seed

    def reset(self) -> None:
        pass  # a scikit-learn model holds no state outside itself

    def train(self, values: dict, x, y, **_epochs_and_callbacks) -> Trained:
        model = make_model(values, self._seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", exceptions.ConvergenceWarning)  # the defaults' max_iter, kept as they are
            model.fit(_flat(x), y)
        return Trained(model, epochs=0)

    def score(self, trained: Trained, x, y) -> tuple[float, float]:
        model = trained.model
        probabilities = model.predict_proba(_flat(x))
        predictions = model.classes_[probabilities.argmax(axis=1)]
        return (
            float(metrics.accuracy_score(y, predictions)),
            float(metrics.log_loss(y, probabilities, labels=model.classes_)),
        )
