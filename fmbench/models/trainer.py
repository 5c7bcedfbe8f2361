"""The trainer seam: how a configuration becomes a trained model with a score. Searchers call it for every trial
and the protocol for the final fit, so a trainer that never calls Keras (a table lookup) or another Keras backend
plugs in at one place.

`KerasTrainer` is today's: a fresh Keras session per model, the space's model builder, fmbench's fit (optimizer
built before the trace) and its one-pass scoring.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fmbench import backend, models
from fmbench.models import scoring, training
from fmbench.spec import RunSpec


@dataclass
class Trained:
    """A trained model and the epochs its fit ran (a Hyperband promotion counts only the epochs it added)."""

    model: Any
    epochs: int


class Trainer(Protocol):
    """Trains configurations of one search space and scores the result; `baseline` is the space's fixed model,
    `clock` the time its fits take (time.monotonic where they run here; a replay's table seconds), which searchers
    spend budgets in and the protocol times runs by, and `hypermodel` what keras-tuner calls with its
    HyperParameters to declare the space (it builds a model per layer count while it sets a tuner up)."""

    baseline: dict
    clock: Callable[[], float]
    hypermodel: Callable[[Any], Any]

    def reset(self) -> None:
        """Forget every earlier model (a fresh Keras session): searchers call it before each trial, the protocol
        after a run."""
        ...

    def train(
        self,
        values: dict,
        x,
        y,
        *,
        epochs: int,
        batch_size: int,
        initial_epoch: int = 0,
        resume_from: str | None = None,
        callbacks: Sequence = (),
        validation_data: tuple | None = None,
        metrics: tuple[str, ...] = (),
    ) -> Trained:
        """Train `values` from fresh weights (or from the weights saved at `resume_from`) for epochs
        initial_epoch..epochs; `callbacks` see every epoch, and may stop the fit."""
        ...

    def score(self, trained: Trained, x, y) -> tuple[float, float]:
        """(accuracy, mean loss) on held-out images."""
        ...


class ResumableTrainer(Trainer, Protocol):
    """A trainer that can continue a trial from saved weights: what Hyperband's promotions need."""

    def save(self, trained: Trained, path: str) -> None:
        """Save the weights, for a later `train(..., resume_from=path)`."""
        ...


class KerasTrainer:
    """Keras models of the spec's space (fmbench.models.mlp or cnn), on the Keras backend this process runs."""

    clock = time.monotonic

    def __init__(self, spec: RunSpec):
        self._spec = spec
        self.baseline = dict(models.space_of(spec).BASELINE_HPS)
        self.hypermodel = models.space_of(spec).build_model

    def train(
        self,
        values: dict,
        x,
        y,
        *,
        epochs: int,
        batch_size: int,
        initial_epoch: int = 0,
        resume_from: str | None = None,
        callbacks: Sequence = (),
        validation_data: tuple | None = None,
        metrics: tuple[str, ...] = (),
    ) -> Trained:
        # Looked up per call: the space module is the builder's one home (tests replace its make_model).
        space = models.space_of(self._spec)
        model = space.make_model(values, metrics) if metrics else space.make_model(values)
        if resume_from is not None:
            # Loaded before the optimizer is built, so a promotion starts Adam afresh, as keras-tuner's promotions
            # always have (fmbench.models.training); Keras warns about the skipped optimizer state every time.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(resume_from)
        extra = {} if validation_data is None else {"validation_data": validation_data}
        history = training.fit(
            model,
            x,
            y,
            epochs=epochs,
            initial_epoch=initial_epoch,
            batch_size=batch_size,
            callbacks=list(callbacks),
            verbose=0,
            **extra,
        )
        return Trained(model, len(history.epoch))

    def reset(self) -> None:
        # As keras-tuner clears Keras's session before each build; gc.collect() is left to Python (fmbench.backend).
        backend.clear_session()

    def score(self, trained: Trained, x, y) -> tuple[float, float]:
        return scoring.score(trained.model, x, y)

    def save(self, trained: Trained, path: str) -> None:
        trained.model.save_weights(path)
