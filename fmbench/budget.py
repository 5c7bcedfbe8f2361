"""Budgets in force during a search: between trials (oracle side) and inside a running fit (callback)."""

from __future__ import annotations

import time

import keras

from fmbench.spec import Budget


class SearchClock:
    """Counts what a search spent (seconds, epochs) and remembers which limit ended it."""

    def __init__(self, budget: Budget, clock=time.monotonic):
        self.budget = budget
        self._clock = clock
        self.started = clock()
        self.epochs_used = 0
        self.stop_reason: str | None = None

    @property
    def deadline(self) -> float | None:
        return None if self.budget.max_seconds is None else self.started + self.budget.max_seconds

    def elapsed(self) -> float:
        return self._clock() - self.started

    def epoch_done(self) -> None:
        """One full training epoch finished, in whichever trial."""
        self.epochs_used += 1

    def out_of_time(self) -> bool:
        return self.deadline is not None and self._clock() >= self.deadline

    def out_of_epochs(self) -> bool:
        return self.budget.max_epochs is not None and self.epochs_used >= self.budget.max_epochs

    def should_stop(self, trials_started: int) -> bool:
        """Checked before each new trial; the first limit reached is recorded as the reason."""
        if self.stop_reason is None:
            if self.budget.max_trials is not None and trials_started >= self.budget.max_trials:
                self.stop_reason = "trials"
            elif self.out_of_epochs():
                self.stop_reason = "epochs"
            elif self.out_of_time():
                self.stop_reason = "time"
        return self.stop_reason is not None


class BudgetCallback(keras.callbacks.Callback):
    """Counts a fit's full epochs into the SearchClock and stops the fit when the budget is spent.

    The deadline is checked after every executed step group, the epoch budget after every epoch. `cut`
    says whether the fit ended before its planned epochs; `epochs` counts only full epochs, so the
    partial epoch of a fit stopped at the deadline is not counted as training done.
    """

    def __init__(self, clock: SearchClock):
        super().__init__()
        self.clock = clock
        self.cut = False
        self.epochs = 0
        self._mid_epoch_stop = False

    def on_train_batch_end(self, batch, logs=None):
        if self.clock.out_of_time():
            self.model.stop_training = self.cut = self._mid_epoch_stop = True

    def on_epoch_end(self, epoch, logs=None):
        if self._mid_epoch_stop:
            return
        self.epochs += 1
        self.clock.epoch_done()
        if epoch + 1 < self.params["epochs"] and (self.clock.out_of_epochs() or self.clock.out_of_time()):
            self.model.stop_training = self.cut = True


class DeadlineCallback(keras.callbacks.Callback):
    """Stops a running fit at a fixed deadline (a distributed worker's copy of the chief's); keras-tuner
    deep-copies callbacks, so it holds only a float."""

    def __init__(self, deadline: float):
        super().__init__()
        self.deadline = deadline

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() >= self.deadline:
            self.model.stop_training = True
