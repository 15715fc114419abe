"""Clocks: the fake one is deterministic and never goes back (I12)."""

from __future__ import annotations

import math
import time

import pytest

from interlock.adapters.clocks import FakeClock, SystemClock
from interlock.core.ports import Clock


def test_both_are_clocks() -> None:
    assert isinstance(SystemClock(), Clock) and isinstance(FakeClock(), Clock)


def test_system_clock_reads_wall_time() -> None:
    before = time.time()
    now = SystemClock().now()
    assert before <= now <= time.time()


def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock()
    assert clock.now() == clock.now() == 1_700_000_000.0
    assert clock.advance(2.5) == 1_700_000_002.5
    assert clock.now() == 1_700_000_002.5


def test_fake_clock_step_advances_after_each_reading() -> None:
    clock = FakeClock(start=10.0, step=0.5)
    assert [clock.now() for _ in range(3)] == [10.0, 10.5, 11.0]
    clock.advance(1)
    assert clock.now() == 12.5


def test_two_fake_clocks_agree() -> None:
    a, b = FakeClock(step=0.25), FakeClock(step=0.25)
    assert [a.now() for _ in range(5)] == [b.now() for _ in range(5)]


@pytest.mark.parametrize("dt", [-1.0, math.nan, math.inf])
def test_fake_clock_never_goes_back_or_jumps_to_nowhere(dt: float) -> None:
    clock = FakeClock()
    with pytest.raises(ValueError, match="time never goes back"):
        clock.advance(dt)
    with pytest.raises(ValueError):
        FakeClock(step=dt)
    assert clock.now() == 1_700_000_000.0


def test_fake_clock_start_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        FakeClock(start=math.nan)
