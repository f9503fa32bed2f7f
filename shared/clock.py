"""Time as a port, so domain code takes `now` as an argument and the demo can speed it up.

Every service builds the same `ScaledClock` from the same three settings, so they all
agree on "now" without talking to each other: simulated time runs `speed` times faster
than wall time, starting at `start` when the wall clock read `anchor`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "FixedClock", "ScaledClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware in UTC."""
        ...

    async def sleep_until(self, instant: datetime) -> None:
        """Sleep until this clock reads at least `instant`."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, instant: datetime) -> None:
        delay = (instant - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)


@dataclass(frozen=True)
class ScaledClock:
    start: datetime
    anchor_unix: float
    speed: float

    def now(self) -> datetime:
        elapsed = (time.time() - self.anchor_unix) * self.speed
        return self.start + timedelta(seconds=elapsed)

    def wall_seconds(self, simulated: timedelta) -> float:
        return simulated.total_seconds() / self.speed

    async def sleep_until(self, instant: datetime) -> None:
        delay = (instant - self.now()).total_seconds() / self.speed
        if delay > 0:
            await asyncio.sleep(delay)


class FixedClock:
    """A clock for tests: it moves only when told to."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, now: datetime) -> None:
        self._now = now

    async def sleep_until(self, instant: datetime) -> None:
        while self._now < instant:
            await asyncio.sleep(0.01)
