"""fmbench.budget with an injected fake clock: which limit stops a search, and the in-fit deadline.

Imports keras (fmbench.budget subclasses keras.callbacks.Callback), but trains nothing.
"""

from __future__ import annotations

import copy
import types

import pytest

from fmbench import budget as budget_module
from fmbench.budget import BudgetCallback, DeadlineCallback, SearchClock
from fmbench.spec import Budget


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_clock_measures_elapsed_from_its_start() -> None:
    clock = FakeClock()
    search = SearchClock(Budget(max_trials=3), clock=clock)
    assert search.elapsed() == 0.0
    clock.advance(7.5)
    assert search.elapsed() == pytest.approx(7.5)


def test_deadline_is_start_plus_max_seconds_or_none() -> None:
    clock = FakeClock(now=50.0)
    assert SearchClock(Budget(max_seconds=12), clock=clock).deadline == pytest.approx(62.0)
    assert SearchClock(Budget(max_trials=2), clock=clock).deadline is None


def test_trials_limit_stops_at_the_limit_and_not_before() -> None:
    clock = FakeClock()
    search = SearchClock(Budget(max_trials=3), clock=clock)
    for started in range(3):
        clock.advance(10_000)  # time alone never stops a trials-only budget
        assert not search.should_stop(started), f"stopped with {started} of 3 trials started"
        assert search.stop_reason is None
    assert search.should_stop(3)
    assert search.stop_reason == "trials"


def test_time_limit_stops_at_the_deadline_and_not_before() -> None:
    clock = FakeClock()
    search = SearchClock(Budget(max_seconds=10), clock=clock)
    clock.advance(9.99)
    assert not search.should_stop(1000)  # any number of trials is fine under a time-only budget
    assert search.stop_reason is None
    clock.advance(0.01)
    assert search.should_stop(1000)
    assert search.stop_reason == "time"


def test_both_limits_trials_reached_first_wins() -> None:
    clock = FakeClock()
    search = SearchClock(Budget(max_trials=2, max_seconds=60), clock=clock)
    clock.advance(5)
    assert not search.should_stop(1)
    clock.advance(5)
    assert search.should_stop(2)
    assert search.stop_reason == "trials"


def test_both_limits_time_reached_first_wins() -> None:
    clock = FakeClock()
    search = SearchClock(Budget(max_trials=10, max_seconds=60), clock=clock)
    clock.advance(30)
    assert not search.should_stop(3)
    clock.advance(31)
    assert search.should_stop(4)
    assert search.stop_reason == "time"


def test_stop_reason_sticks_once_recorded() -> None:
    # keras-tuner may ask again after the first STOPPED; the recorded reason must not flip or clear.
    clock = FakeClock()
    search = SearchClock(Budget(max_trials=2, max_seconds=60), clock=clock)
    assert search.should_stop(2) and search.stop_reason == "trials"
    clock.advance(100)
    assert search.should_stop(2) and search.stop_reason == "trials"


def test_epoch_limit_stops_once_the_epochs_are_spent_and_not_before() -> None:
    search = SearchClock(Budget(max_epochs=3), clock=FakeClock())
    for _ in range(2):
        search.epoch_done()
        assert not search.should_stop(100)
    search.epoch_done()
    assert search.should_stop(100) and search.stop_reason == "epochs"


def test_epoch_limit_before_time_limit_when_both_are_spent() -> None:
    clock = FakeClock()
    search = SearchClock(Budget(max_epochs=1, max_seconds=5), clock=clock)
    search.epoch_done()
    clock.advance(10)
    assert search.should_stop(1) and search.stop_reason == "epochs"


# --- BudgetCallback: counts epochs and stops a running fit -----------------------------------------------


def _fit_callback(budget: Budget, clock: FakeClock, planned_epochs: int, initial_epoch: int = 0):
    callback = BudgetCallback(SearchClock(budget, clock=clock))
    model = types.SimpleNamespace(stop_training=False)
    callback.set_model(model)
    callback.set_params({"epochs": planned_epochs})
    return callback, model


def _epoch(callback, model, epoch: int, steps: int = 3) -> None:
    for step in range(steps):
        callback.on_train_batch_end(step)
        if model.stop_training:
            break
    callback.on_epoch_end(epoch)  # Keras ends the epoch it broke out of, then stops


def test_budget_callback_cuts_the_fit_when_the_epoch_budget_is_spent() -> None:
    clock = FakeClock()
    callback, model = _fit_callback(Budget(max_epochs=5), clock, planned_epochs=9)
    callback.clock.epochs_used = 3  # earlier trials spent 3 of the 5
    _epoch(callback, model, 0)
    assert not model.stop_training
    _epoch(callback, model, 1)
    assert model.stop_training and callback.cut and callback.epochs == 2 and callback.clock.epochs_used == 5


def test_budget_callback_does_not_cut_a_fit_that_ends_exactly_on_the_budget() -> None:
    # A promoted Hyperband trial: epochs 3..8 of 9, and exactly 6 epochs of budget left.
    callback, model = _fit_callback(Budget(max_epochs=6), FakeClock(), planned_epochs=9)
    for epoch in range(3, 9):
        _epoch(callback, model, epoch)
    assert not callback.cut and callback.epochs == 6 and callback.clock.out_of_epochs()


def test_budget_callback_stops_mid_epoch_at_the_deadline_and_does_not_count_that_epoch(fake_time: FakeClock) -> None:
    clock = FakeClock()
    callback, model = _fit_callback(Budget(max_seconds=10), clock, planned_epochs=9)
    _epoch(callback, model, 0)
    clock.advance(10)
    _epoch(callback, model, 1)
    assert model.stop_training and callback.cut
    assert callback.epochs == 1 and callback.clock.epochs_used == 1, "the partial epoch is not training done"


# --- DeadlineCallback ----------------------------------------------------------------------------------------------


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Replace the monotonic clock fmbench.budget reads (only inside that module)."""
    clock = FakeClock()
    monkeypatch.setattr(budget_module, "time", types.SimpleNamespace(monotonic=clock))
    return clock


def test_deadline_callback_stops_the_fit_after_the_deadline_and_not_before(fake_time: FakeClock) -> None:
    callback = DeadlineCallback(deadline=fake_time.now + 5)
    model = types.SimpleNamespace(stop_training=False)
    callback.set_model(model)
    for batch in range(3):
        fake_time.advance(1)
        callback.on_train_batch_end(batch)
        assert model.stop_training is False, f"stopped at batch {batch}, before the deadline"
    fake_time.advance(2)  # now exactly at the deadline
    callback.on_train_batch_end(3)
    assert model.stop_training is True


def test_deadline_callback_survives_deepcopy(fake_time: FakeClock) -> None:
    # keras-tuner deep-copies callbacks for every execution: the copy must keep the same deadline.
    original = DeadlineCallback(deadline=fake_time.now + 5)
    callback = copy.deepcopy(original)
    assert callback.deadline == original.deadline
    model = types.SimpleNamespace(stop_training=False)
    callback.set_model(model)
    callback.on_train_batch_end(0)
    assert model.stop_training is False
    fake_time.advance(6)
    callback.on_train_batch_end(1)
    assert model.stop_training is True
