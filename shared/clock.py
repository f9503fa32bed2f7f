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
    "ClockSegment",
    "ScaledClock",
    "SystemClock",
    "read_clock_file",
    "write_clock_file",
    "write_clock_segment",
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
    """A scaled clock whose segment (start, anchor, speed, halt) lives in a small JSON file.

    Every process reading the same file agrees on "now", and whoever rewrites the file
    can hold simulated time and let it run again. The chaos run holds it while the system
    still owes an answer, so that lateness caused by a fault (or by a busy machine) does
    not change who gets their parcel: it tests exactly-once effects, not punctuality.

    A hold is written as "run on until `halt_at`, then stand still", with `halt_at` a
    little ahead of now: a reader that has not yet seen the new file is still right, so
    no reader ever sees time run backwards.
    """

    _RECHECK_SECONDS = 0.02

    def __init__(self, path: Path) -> None:
        self._path = path
        self._checked = 0.0
        self._mtime = -1.0
        self._segment = ClockSegment(ScaledClock(datetime.now(UTC), time.time(), 1.0), None)
        self._refresh(force=True)

    def _refresh(self, force: bool = False) -> None:
        wall = time.monotonic()
        if not force and wall - self._checked < self._RECHECK_SECONDS:
            return
        self._checked = wall
        mtime = self._path.stat().st_mtime_ns
        if mtime != self._mtime:
            self._segment = read_clock_file(self._path)
            self._mtime = mtime

    @property
    def speed(self) -> float:
        self._refresh()
        return self._segment.current_speed()

    def now(self) -> datetime:
        self._refresh()
        return self._segment.now()

    async def sleep_until(self, instant: datetime) -> None:
        # A hold can only make a sleeper wake early, never late, so it may sleep the whole
        # remaining span and look again: thousands of sleepers then cost next to nothing.
        while True:
            remaining = (instant - self.now()).total_seconds()
            if remaining <= 0:
                return
            speed = self.speed
            await asyncio.sleep(0.5 if speed == 0 else min(remaining / speed, 5.0))


@dataclass(frozen=True)
class ClockSegment:
    """Scaled time that stands still once it reaches `halt_at` (if set)."""

    running: ScaledClock
    halt_at: datetime | None

    def now(self) -> datetime:
        if self.running.speed == 0:
            return self.running.start
        instant = self.running.now()
        return instant if self.halt_at is None else min(instant, self.halt_at)

    def current_speed(self) -> float:
        if self.halt_at is not None and self.running.now() >= self.halt_at:
            return 0.0
        return self.running.speed

    def held(self, lead_seconds: float) -> ClockSegment:
        """The same run, halting `lead_seconds` of wall time from now."""
        if self.running.speed == 0:
            return self
        halt_at = self.now().astimezone(UTC) + timedelta(seconds=lead_seconds * self.running.speed)
        return ClockSegment(self.running, halt_at if self.halt_at is None else min(halt_at, self.halt_at))

    def resumed(self, speed: float) -> ClockSegment:
        return ClockSegment(ScaledClock(self.now().astimezone(UTC), time.time(), speed), None)


def read_clock_file(path: Path) -> ClockSegment:
    document = json.loads(path.read_text())
    running = ScaledClock(datetime.fromisoformat(document["start"]), float(document["anchor_unix"]),
                          float(document["speed"]))
    halt_at = document.get("halt_at")
    return ClockSegment(running, datetime.fromisoformat(halt_at) if halt_at else None)


def write_clock_file(path: Path, start: datetime, anchor_unix: float, speed: float,
                     halt_at: datetime | None = None) -> None:
    """Atomically: a reader sees the old segment or the new one, never half of one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"start": start.isoformat(), "anchor_unix": anchor_unix, "speed": speed,
                                     "halt_at": halt_at.isoformat() if halt_at else None}))
    os.replace(temporary, path)


def write_clock_segment(path: Path, segment: ClockSegment) -> None:
    running = segment.running
    write_clock_file(path, running.start, running.anchor_unix, running.speed, segment.halt_at)


HOLD_LEAD_SECONDS = 0.05  # well over FileClock's recheck interval, so every reader sees the hold in time
