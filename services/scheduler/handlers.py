"""The scheduler: learns delivery days from issued codes, closes each one when it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from services.scheduler import domain
from shared.clock import Clock
from shared.events import DayClosed, Envelope, Event, OtpIssued, Topics, day_closed_event_id
from shared.kafka.consumer import Handler
from shared.postgres.unit_of_work import UnitOfWorkFactory

__all__ = ["SchedulerHandlers"]

log = logging.getLogger(__name__)


@dataclass
class SchedulerHandlers:
    unit_of_work: UnitOfWorkFactory
    clock: Clock
    topics: Topics
    batch: int = 200

    async def handle_otp_issued(self, envelope: Envelope, event: Event) -> None:
        """OtpIssued → its (delivery date, zone) is tracked; idempotent on that pair."""
        assert isinstance(event, OtpIssued)
        async with self.unit_of_work() as uow:
            await uow.conn.execute(
                "INSERT INTO delivery_days (local_date, delivery_zone, closes_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING",
                event.delivery_date, event.delivery_zone,
                domain.closes_at(event.delivery_date, event.delivery_zone))

    async def close_due_days(self) -> int:
        """Emits DayClosed for every tracked day that has ended, the missed ones included."""
        now = self.clock.now()
        async with self.unit_of_work() as uow:
            rows = await uow.conn.fetch(
                """SELECT local_date, delivery_zone, closes_at FROM delivery_days
                   WHERE closed_at IS NULL AND closes_at <= $1
                   ORDER BY closes_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
                now, self.batch)
            for row in rows:
                await uow.conn.execute(
                    "UPDATE delivery_days SET closed_at = $3 WHERE local_date = $1 AND delivery_zone = $2",
                    row["local_date"], row["delivery_zone"], now)
                event = DayClosed(local_date=row["local_date"], zone=row["delivery_zone"],
                                  closed_at=row["closes_at"])
                uow.emit(self.topics.days, Envelope.wrap(
                    event, occurred_at=now,
                    event_id=day_closed_event_id(row["local_date"], row["delivery_zone"])))
        return len(rows)

    async def run_ticker(self, stop: asyncio.Event, tick_seconds: float) -> None:
        while not stop.is_set():
            try:
                closed = await self.close_due_days()
                if closed:
                    log.info("closed %d delivery day(s)", closed)
                    continue
            except Exception as exc:  # a ticker must outlive any one failure (e.g. a database restart)
                log.warning("cannot close days (%s), retrying", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), tick_seconds)
            except TimeoutError:
                pass

    def by_event_type(self) -> Mapping[str, Handler]:
        return {OtpIssued.event_type: self.handle_otp_issued}
