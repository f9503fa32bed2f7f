"""Composition root of the scheduler."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from services.scheduler.handlers import SchedulerHandlers
from services.scheduler.settings import SchedulerSettings
from shared.logs import configure_logging
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


async def main() -> None:
    settings = SchedulerSettings()  # type: ignore[call-arg]
    configure_logging("scheduler", settings.log_level)
    async with ServiceRuntime.open("scheduler", settings, MIGRATIONS) as runtime:
        handlers = SchedulerHandlers(runtime.unit_of_work, runtime.clock, runtime.topics)
        runtime.consume("scheduler", [runtime.topics.issuance], handlers.by_event_type())
        runtime.add_task(partial(handlers.run_ticker, tick_seconds=settings.scheduler_tick_seconds))
        await runtime.run()
