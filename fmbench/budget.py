"""Budgets in force during a search: between trials (oracle side) and inside a running fit (callback)."""
from __future__ import annotations

import time

import keras

from fmbench.spec import Budget


class SearchClock:
    """Tells the oracle when the budget is spent, and remembers which limit ended the search."""

    def __init__(self, budget: Budget, clock=time.monotonic):
        self.budget = budget
        self._clock = clock
        self.started = clock()
        self.stop_reason: str | None = None

    @property
    def deadline(self) -> float | None:
        return None if self.budget.max_seconds is None else self.started + self.budget.max_seconds

    def elapsed(self) -> float:
        return self._clock() - self.started

    def should_stop(self, trials_started: int) -> bool:
        """Checked before each new trial; the first limit reached is recorded as the reason."""
        if self.budget.max_trials is not None and trials_started >= self.budget.max_trials:
            self.stop_reason = "trials"
        elif self.deadline is not None and self._clock() >= self.deadline:
            self.stop_reason = "time"
        return self.stop_reason is not None


class DeadlineCallback(keras.callbacks.Callback):
    """Stops a running fit at the search deadline; keras-tuner deep-copies callbacks, so it holds only a float."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() >= self.deadline:
            self.model.stop_training = True
