"""The one tuner registry: what fmbench knows about each tuner and fixed baseline model, in one table.

Everything else derives from it: the names the CLI and profiles accept, which space a tuner searches, which
rows record a model-based start, which tuners keras-tuner's chief/worker mode can serve, which a replay table can
stand in for, and which backend module of `fmbench.search` runs a search. Adding a tuner is one entry here plus its
backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Runner:
    """One tuner (or fixed baseline model) and the facts the rest of fmbench asks about it."""

    backend: str  # the fmbench.search module that searches (keras_tuner, optuna, sklearn); "" for the Keras baseline
    spaces: tuple[str, ...] = ("mlp",)  # search spaces it can search (fmbench.models)
    fixed: bool = False  # a baseline: one fixed model, no search and no budget
    model_based: bool = False  # a model proposes trials after a random start (search.base.initial_points)
    trains_epochs: bool = True  # counts training epochs, so an epoch budget can stop it
    distributable: bool = False  # keras-tuner's chief/worker mode can serve its oracle (fmbench.search.distributed)
    default: bool = False  # in a profile that names no tuners
    trainer: str = "keras"  # how the chosen model is retrained and tested: "keras" (fmbench.protocol) or "sklearn"


BASELINE = "baseline"
RUNNERS: dict[str, Runner] = {
    "random": Runner("keras_tuner", ("mlp", "cnn"), distributable=True, default=True),
    "hyperband": Runner("keras_tuner", ("mlp", "cnn"), distributable=True, default=True),
    "bayesian": Runner("keras_tuner", ("mlp", "cnn"), model_based=True, distributable=True, default=True),
    "grid": Runner("keras_tuner", ("mlp", "cnn"), distributable=True),
    "tpe": Runner("optuna", model_based=True),
    "tpe-hyperband": Runner("optuna", model_based=True),
    # TPE with a joint model of the knobs that appear together: Optuna's answer for conditional spaces.
    "tpe-multivariate": Runner("optuna", model_based=True),
    "sklearn": Runner("sklearn", model_based=True, trains_epochs=False, trainer="sklearn"),
    BASELINE: Runner("", ("mlp", "cnn"), fixed=True),
    "sklearn-baseline": Runner("sklearn", fixed=True, trains_epochs=False, trainer="sklearn"),
}

RUNNER_NAMES = tuple(RUNNERS)
TUNER_NAMES = tuple(name for name, runner in RUNNERS.items() if not runner.fixed)
BASELINES = tuple(name for name, runner in RUNNERS.items() if runner.fixed)
DEFAULT_TUNERS = tuple(name for name, runner in RUNNERS.items() if runner.default)
DISTRIBUTABLE = tuple(name for name, runner in RUNNERS.items() if runner.distributable)
# What a replay table (fmbench.replay) can stand in for: the Keras models of the mlp space, the space it measured.
REPLAYABLE = tuple(name for name, runner in RUNNERS.items() if runner.trainer == "keras" and "mlp" in runner.spaces)


def names_for_space(space: str) -> tuple[str, ...]:
    """The tuners and baselines that can search (or train) the given space."""
    return tuple(name for name, runner in RUNNERS.items() if space in runner.spaces)


def hyperband_first_bracket(max_epochs: int, factor: int) -> tuple[int, int]:
    """(trials, epochs) of the first, most aggressive bracket of keras-tuner's Hyperband.

    Same arithmetic as keras_tuner's HyperbandOracle (_get_num_brackets, _get_size, _get_epochs); a
    promoted trial trains only the epochs it adds to its parent's. max_epochs=9, factor=3: 13 trials of
    1, 3 and 9 epochs, 21 epochs in all. A budget below this never promotes a trial.
    """
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs, brackets = epochs / factor, brackets + 1
    bracket = brackets - 1
    end_size = math.ceil(1 + math.log(max_epochs, factor)) / (bracket + 1)
    trials = total_epochs = previous = 0
    for round_ in range(bracket + 1):
        size = math.ceil(end_size * factor ** (bracket - round_))
        rung = math.ceil(max_epochs / factor ** (bracket - round_))
        trials, total_epochs, previous = trials + size, total_epochs + size * (rung - previous), rung
    return trials, total_epochs
