"""Clocks: the only place interlock reads the time.

The core takes time as a value on every event; the runner reads it from one of
these. ``FakeClock`` makes a run deterministic (I12): same inputs, same fake
clock, identical outputs.
"""

from __future__ import annotations

import math
import time

__all__ = ["SystemClock", "FakeClock"]


class SystemClock:
    """Wall-clock seconds since the epoch (``time.time()``), as audit records want."""

    def now(self) -> float:
        return time.time()

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when told: by ``advance(dt)``, and by ``step``
    after every ``now()`` (so successive readings differ when a test needs it).

    It never goes backwards: audit times are ordered.
    """

    __slots__ = ("_t", "_step")

    def __init__(self, start: float = 1_700_000_000.0, step: float = 0.0) -> None:
        _check_finite_non_negative("step", step)
        if not math.isfinite(start):
            raise ValueError(f"FakeClock start must be a finite number, got {start!r}")
        self._t = float(start)
        self._step = float(step)

    def now(self) -> float:
        t = self._t
        self._t += self._step
        return t

    def advance(self, dt: float) -> float:
        """Move forward by ``dt`` seconds; returns the new time."""
        _check_finite_non_negative("advance", dt)
        self._t += float(dt)
        return self._t

    def __repr__(self) -> str:
        return f"FakeClock(now={self._t!r}, step={self._step!r})"


def _check_finite_non_negative(what: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"FakeClock {what} must be a finite number >= 0 (time never goes back), got {value!r}")
