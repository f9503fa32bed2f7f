"""Simulated time that waits for the system: the chaos run's clock.

A replay compares a calm run with a faulted one shipment by shipment, so lateness must
not decide outcomes: a code emailed an hour late because an instance was just killed
(or because two cores run eight services) would otherwise turn a handover into a
redelivery. `PacedClock` is the replay's clock and the writer of the file the services
read (see `shared.clock.FileClock`). The `Pacer` holds it whenever the doorstep has
been owed an answer for longer than a simulated grace, and lets it run once the answer
came: time then runs at the configured speed when the system keeps up and no faster
than the system answers when it does not.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from shared.clock import HOLD_LEAD_SECONDS, ClockSegment, ScaledClock, write_clock_segment

__all__ = ["Actors", "PacedClock", "Pacer"]


class PacedClock:
    """Scaled time with holds; in-process sleepers wake from one timer heap, not one poll each.

    A new segment that moves time on (a resume, a skip) is written for the services at
    once but adopted here only after every reader has had time to see it, so the doorstep
    never stamps an event at an instant the services' clocks have not reached yet.
    """

    _IDLE_SECONDS = 0.02
    _ADOPT_AFTER_SECONDS = 0.04  # over FileClock's recheck interval
    # Time runs on a lease this process keeps renewing: if it stalls (two cores shared with
    # eight services), time stops for everyone within the lease instead of running on while
    # nobody here can act.
    _LEASE_SECONDS = 0.15
    _RENEW_WHEN_LEFT_SECONDS = 0.1

    def __init__(self, path: Path, start: datetime, anchor_unix: float, speed: float) -> None:
        self._path = path
        self._speed = speed
        # UTC throughout: arithmetic on a zone-aware instant is wall-clock arithmetic, which
        # gains or loses an hour across a daylight-saving change.
        self._segment = self._leased(ScaledClock(start.astimezone(UTC), anchor_unix, speed))
        self._written = self._segment  # the newest segment, adopted here once `_adopt_at` passed
        self._adopt_at = 0.0
        self._holds: set[str] = set()
        self._held_since: float | None = None
        self.held_seconds = 0.0
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._sleeping = 0  # sleepers not yet back at work, including woken ones still to resume
        self.stalls = 0  # leases that ran out before this process renewed them
        self._order = itertools.count()
        self._changed = asyncio.Event()
        write_clock_segment(path, self._segment)

    def _current(self) -> ClockSegment:
        if self._written is not self._segment and time.monotonic() >= self._adopt_at:
            self._segment = self._written
        return self._segment

    def _write(self, segment: ClockSegment, adopt_now: bool) -> None:
        write_clock_segment(self._path, segment)
        self._written = segment
        if adopt_now:
            self._segment = segment
        else:
            self._adopt_at = time.monotonic() + self._ADOPT_AFTER_SECONDS
        self._changed.set()

    def now(self) -> datetime:
        return self._current().now()

    def _leased(self, running: ScaledClock) -> ClockSegment:
        return ClockSegment(running, running.now() + timedelta(seconds=self._LEASE_SECONDS * running.speed))

    def renew(self) -> None:
        """Extends the lease; after a stall, time resumes from where the lease stopped it."""
        if self._holds or self._written is not self._segment:
            return
        segment = self._segment
        running_now = segment.running.now()
        if segment.halt_at is not None and running_now >= segment.halt_at:
            self.stalls += 1
            self._write(self._leased(segment.resumed(self._speed).running), adopt_now=False)
        elif segment.halt_at is None or (segment.halt_at - running_now).total_seconds() < (
                self._RENEW_WHEN_LEFT_SECONDS * self._speed):
            # Moving a halt later is safe to adopt at once: a reader that has not seen it yet
            # stands still a little early, never ahead of this process.
            self._write(self._leased(segment.running), adopt_now=True)

    @property
    def holds(self) -> frozenset[str]:
        return frozenset(self._holds)

    def hold(self, reason: str) -> None:
        if not self._holds:
            # A hold only ever stops time later than now, so here it takes effect at once.
            held = self._written.held(HOLD_LEAD_SECONDS)
            self._write(held, adopt_now=self._written is self._segment)
            self._held_since = time.monotonic()
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds:
            self._write(self._leased(self._written.resumed(self._speed).running), adopt_now=False)
            if self._held_since is not None:
                self.held_seconds += time.monotonic() - self._held_since
            self._held_since = None

    async def sleep_until(self, instant: datetime) -> None:
        instant = instant.astimezone(UTC)
        if self.now() >= instant:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (instant, next(self._order), future))
        self._changed.set()
        self._sleeping += 1
        try:
            await future
        finally:
            self._sleeping -= 1

    def next_wake(self) -> datetime | None:
        """The earliest instant a sleeper waits for; None while a woken sleeper has yet to resume."""
        if self._sleeping != len(self._sleepers):
            return None
        return self._sleepers[0][0] if self._sleepers else None

    @property
    def sleeping(self) -> int:
        return self._sleeping

    def skip_to(self, instant: datetime) -> None:
        """Jump ahead over a stretch in which nobody has anything to do."""
        instant = instant.astimezone(UTC)
        if self._holds or self._written is not self._segment or instant <= self.now():
            return
        self._write(self._leased(ScaledClock(instant, time.time(), self._speed)), adopt_now=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Wakes sleepers as their instants pass; runs for the whole replay."""
        while not stop.is_set():
            self.renew()
            now = self.now()
            while self._sleepers and self._sleepers[0][0] <= now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            delay = self._IDLE_SECONDS
            if self._written is not self._segment:
                delay = max(self._adopt_at - time.monotonic(), 0.0)
            speed = self._current().current_speed()
            if self._sleepers and speed > 0:
                delay = min(delay, (self._sleepers[0][0] - now).total_seconds() / speed)
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(delay, 0.0005))
            except TimeoutError:
                pass


class Actors(Protocol):
    """What the pacer needs to know about the doorstep's shipments."""

    def owed_since(self) -> list[datetime]:
        """Per pending answer: from when the system owes it (in the future: not yet)."""
        ...

    def running(self) -> int:
        """Shipments not yet settled; each is either sleeping, waiting for an answer, or at work."""
        ...


class Pacer:
    """Holds the clock while the oldest owed answer is older than `grace` of simulated time,
    and skips stretches of simulated time in which nobody has anything to do.

    A skip never passes an instant someone sleeps until or from which an answer will be
    owed (the end of a delivery day), and happens only while every shipment is asleep or
    waiting for a future instant: so it changes when things happen in wall time, never
    what happens. It keeps a long tail of late deliveries from costing minutes.
    """

    _CHECK_SECONDS = 0.01

    def __init__(self, clock: PacedClock, actors: Actors, grace: timedelta,
                 skip_over: timedelta = timedelta(hours=3), skip_margin: timedelta = timedelta(hours=1)) -> None:
        self._clock = clock
        self._actors = actors
        self._grace = grace
        self._skip_over = skip_over
        self._skip_margin = skip_margin

    def step(self) -> None:
        now = self._clock.now()
        owed = self._actors.owed_since()
        oldest = min(owed, default=None)
        if oldest is not None and now - oldest > self._grace:
            self._clock.hold("owed")
            return
        self._clock.release("owed")
        if oldest is not None and oldest <= now:
            return  # an answer is on its way
        next_wake = self._clock.next_wake()
        if next_wake is None or self._actors.running() != self._clock.sleeping + len(owed):
            return  # someone is at work, or just woke up
        due = min(next_wake, oldest) if oldest is not None else next_wake
        if due - now > self._skip_over:
            self._clock.skip_to(due - self._skip_margin)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                self.step()
                await asyncio.sleep(self._CHECK_SECONDS)
        finally:
            self._clock.release("owed")
