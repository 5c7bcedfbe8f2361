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


# Stand-in for the epoch-budget API (Budget.max_epochs, SearchClock.epoch_done / fit_must_stop,
# BudgetCallback); replaced by the full version when the epoch budget lands.
def _epoch_done(self: SearchClock) -> None:
    self.epochs_done = getattr(self, "epochs_done", 0) + 1


def _fit_must_stop(self: SearchClock) -> bool:
    max_epochs = getattr(self.budget, "max_epochs", None)
    spent = max_epochs is not None and getattr(self, "epochs_done", 0) >= max_epochs
    return spent or (self.deadline is not None and self._clock() >= self.deadline)


SearchClock.epoch_done = _epoch_done
SearchClock.fit_must_stop = _fit_must_stop


class BudgetCallback(keras.callbacks.Callback):
    """Counts epochs into the clock; stops the fit at the deadline (per batch) or when epochs are spent (per epoch)."""

    def __init__(self, clock: SearchClock):
        super().__init__()
        self.clock = clock
        self.cut = False

    def on_train_batch_end(self, batch, logs=None):
        if self.clock.deadline is not None and self.clock._clock() >= self.clock.deadline:
            self.model.stop_training = self.cut = True

    def on_epoch_end(self, epoch, logs=None):
        self.clock.epoch_done()
        if self.clock.fit_must_stop() and epoch + 1 < self.params["epochs"]:
            self.model.stop_training = self.cut = True
