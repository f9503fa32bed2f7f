"""Time as a port, so domain code takes `now` as an argument and the demo can speed it up.

Every service builds the same `ScaledClock` from the same three settings, so they all
agree on "now" without talking to each other: simulated time runs `speed` times faster
than wall time, starting at `start` when the wall clock read `anchor`.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

__all__ = [
    "Clock",
    "FileClock",
    "FixedClock",
    "ScaledClock",
    "SystemClock",
    "pause_clock",
    "resume_clock",
    "write_clock_file",
]


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


class FileClock:
    """A scaled clock whose segment (start, anchor, speed) lives in a small JSON file.

    Every process reading the same file agrees on "now", and whoever rewrites the file
    can pause simulated time (speed 0) and resume it. The chaos run freezes time while a
    fault is being recovered, so that lateness caused by the fault does not change who
    gets their parcel: it tests exactly-once effects, not punctuality.
    """

    _RECHECK_SECONDS = 0.02

    def __init__(self, path: Path) -> None:
        self._path = path
        self._checked = 0.0
        self._mtime = -1.0
        self._segment = ScaledClock(datetime.now(UTC), time.time(), 1.0)
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        wall = time.monotonic()
        if not force and wall - self._checked < self._RECHECK_SECONDS:
            return
        self._checked = wall
        mtime = self._path.stat().st_mtime
        if mtime != self._mtime:
            document = json.loads(self._path.read_text())
            self._segment = ScaledClock(
                datetime.fromisoformat(document["start"]), float(document["anchor_unix"]), float(document["speed"])
            )
            self._mtime = mtime

    @property
    def speed(self) -> float:
        self._refresh()
        return self._segment.speed

    def now(self) -> datetime:
        self._refresh()
        segment = self._segment
        if segment.speed == 0:
            return segment.start
        return segment.now()

    async def sleep_until(self, instant: datetime) -> None:
        # A pause can only make a sleeper wake early, never late, so it may sleep the whole
        # remaining span and look again: thousands of sleepers then cost next to nothing.
        while True:
            remaining = (instant - self.now()).total_seconds()
            if remaining <= 0:
                return
            speed = self.speed
            await asyncio.sleep(0.5 if speed == 0 else min(remaining / speed, 5.0))


def write_clock_file(path: Path, start: datetime, anchor_unix: float, speed: float) -> None:
    """Atomically: a reader sees the old segment or the new one, never half of one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"start": start.isoformat(), "anchor_unix": anchor_unix, "speed": speed}))
    os.replace(temporary, path)


def pause_clock(path: Path) -> None:
    frozen = FileClock(path).now()
    write_clock_file(path, frozen, time.time(), 0.0)


def resume_clock(path: Path, speed: float) -> None:
    frozen = FileClock(path).now()
    write_clock_file(path, frozen, time.time(), speed)
