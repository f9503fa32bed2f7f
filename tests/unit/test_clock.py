"""The file clock and the replay's paced clock: holds never make time run backwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from demo.pacing import PacedClock, Pacer
from shared.clock import (
    HOLD_LEAD_SECONDS,
    ClockSegment,
    FileClock,
    ScaledClock,
    read_clock_file,
    write_clock_file,
    write_clock_segment,
)

START = datetime(2018, 1, 1, tzinfo=UTC)
SPEED = 3600.0  # a simulated hour per wall second


def test_a_held_segment_runs_on_until_its_halt_then_stands_still():
    running = ScaledClock(START, time.time() - 10, SPEED)
    held = ClockSegment(running, None).held(lead_seconds=0.5)
    assert held.halt_at is not None
    assert held.now() <= held.halt_at
    assert held.halt_at - running.now() <= timedelta(seconds=0.5 * SPEED)
    already_halted = ClockSegment(running, running.now() - timedelta(hours=1))
    assert already_halted.now() == already_halted.halt_at
    assert already_halted.current_speed() == 0


def test_resuming_starts_where_the_hold_left_time():
    halted = ClockSegment(ScaledClock(START, time.time() - 10, SPEED), START + timedelta(hours=2))
    resumed = halted.resumed(SPEED)
    assert resumed.halt_at is None
    assert START + timedelta(hours=2) <= resumed.now() < START + timedelta(hours=2, minutes=1)


def test_file_clock_readers_never_see_time_go_back_across_a_hold(tmp_path):
    path = tmp_path / "clock.json"
    write_clock_file(path, START, time.time(), SPEED)
    reader = FileClock(path)
    seen = [reader.now()]
    write_clock_segment(path, read_clock_file(path).held(HOLD_LEAD_SECONDS))
    for _ in range(20):
        seen.append(reader.now())
        time.sleep(0.01)
    write_clock_segment(path, read_clock_file(path).resumed(SPEED))
    time.sleep(0.05)
    seen.append(reader.now())
    assert seen == sorted(seen)
    assert seen[-1] > seen[-2]


@dataclass
class _Actors:
    owed: list[datetime]
    running: Callable[[], int]

    def owed_since(self) -> list[datetime]:
        return list(self.owed)


def test_paced_clock_wakes_sleepers_in_order_and_holds_while_an_answer_is_owed(tmp_path):
    async def scenario() -> None:
        clock = PacedClock(tmp_path / "clock.json", START, time.time(), SPEED * 10)
        owed: list[datetime] = []
        pacer = Pacer(clock, _Actors(owed, running=lambda: clock.sleeping + len(owed)), grace=timedelta(minutes=30))
        stop = asyncio.Event()
        helpers = [asyncio.create_task(clock.run(stop)), asyncio.create_task(pacer.run(stop))]
        woken: list[int] = []

        async def sleeper(hours: int) -> None:
            await clock.sleep_until(START + timedelta(hours=hours))
            woken.append(hours)

        await asyncio.gather(*(sleeper(hours) for hours in (3, 1, 2)))
        assert woken == [1, 2, 3]
        owed.append(clock.now())
        await asyncio.sleep(0.3)  # 0.3 s at 10 simulated hours per second: far past the grace
        held_at = clock.now()
        assert "owed" in clock.holds
        await asyncio.sleep(0.2)
        assert clock.now() == held_at
        assert FileClock(tmp_path / "clock.json").now() == held_at  # the services see the same hold
        owed.clear()
        await asyncio.sleep(0.1)
        assert not clock.holds
        assert clock.now() > held_at
        assert clock.held_seconds > 0.1
        stop.set()
        await asyncio.gather(*helpers)

    asyncio.run(scenario())


def test_the_pacer_skips_idle_stretches_but_never_past_a_sleeper_or_a_coming_debt(tmp_path):
    async def scenario() -> None:
        clock = PacedClock(tmp_path / "clock.json", START, time.time(), SPEED)
        day_end = START + timedelta(days=2)
        owed = [day_end]  # an answer owed from the end of the day on
        at_work = [0]
        pacer = Pacer(clock, _Actors(owed, running=lambda: clock.sleeping + len(owed) + at_work[0]),
                      grace=timedelta(hours=1))
        sleeper = asyncio.create_task(clock.sleep_until(START + timedelta(days=5)))
        runner = asyncio.create_task(clock.run(asyncio.Event()))
        await asyncio.sleep(0.05)
        at_work[0] = 1  # somebody busy: no skip
        pacer.step()
        assert clock.now() < START + timedelta(hours=1)
        at_work[0] = 0
        pacer.step()
        before = clock.now()
        assert FileClock(tmp_path / "clock.json").now() > day_end - timedelta(hours=1)  # the services first
        assert before < START + timedelta(hours=1)
        await asyncio.sleep(0.06)  # then here, once every reader has seen it
        assert day_end - timedelta(hours=1) <= clock.now() < day_end  # up to the debt, not past it
        owed.clear()
        pacer.step()
        await asyncio.sleep(0.06)
        assert START + timedelta(days=5) - timedelta(hours=1) <= clock.now() < START + timedelta(days=5)
        await asyncio.wait_for(sleeper, 2)
        runner.cancel()

    asyncio.run(scenario())


def test_the_paced_clock_counts_in_utc_across_a_daylight_saving_change(tmp_path):
    from zoneinfo import ZoneInfo

    sao_paulo = ZoneInfo("America/Sao_Paulo")  # summer time ended at local midnight 2018-02-18
    before_change = datetime(2018, 2, 17, 22, 0, tzinfo=sao_paulo)  # 00:00 UTC
    clock = PacedClock(tmp_path / "clock.json", before_change, time.time(), SPEED)
    clock.skip_to(datetime(2018, 2, 17, 23, 0, tzinfo=sao_paulo))  # 01:00 UTC
    time.sleep(0.05)
    now = clock.now()
    assert now.tzinfo is UTC
    assert datetime(2018, 2, 18, 1, 0, tzinfo=UTC) <= now < datetime(2018, 2, 18, 1, 30, tzinfo=UTC)
    # Two wall-clock hours later it is 02:00 at -03:00, i.e. 05:00 UTC: three real hours on.
    assert (datetime(2018, 2, 18, 2, 0, tzinfo=sao_paulo) - now).total_seconds() > 2.5 * 3600


def test_time_stops_when_the_pacing_process_stalls_and_resumes_where_it_stopped(tmp_path):
    clock = PacedClock(tmp_path / "clock.json", START, time.time(), SPEED)
    time.sleep(0.3)  # nobody renews the lease: a stalled process
    stopped = clock.now()
    assert stopped - START <= timedelta(seconds=0.16 * SPEED)
    assert FileClock(tmp_path / "clock.json").now() == stopped  # the services stopped there too
    clock.renew()
    assert clock.stalls == 1
    time.sleep(0.06)
    resumed = clock.now()
    assert stopped < resumed < stopped + timedelta(seconds=0.1 * SPEED)  # on from the stop, no jump
