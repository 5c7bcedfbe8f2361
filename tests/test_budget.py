"""fmbench.budget with an injected fake clock: which limit stops a search, and the in-fit deadline.

Imports keras (fmbench.budget subclasses keras.callbacks.Callback), but trains nothing.
"""
from __future__ import annotations

import copy
import types

import pytest

from fmbench import budget as budget_module
from fmbench.budget import DeadlineCallback, SearchClock
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
