"""The one outbox relay: publishes committed outbox rows to Kafka, in id order.

At-least-once: a crash after the broker acknowledged a batch but before its rows were
deleted publishes that batch again, with the same event ids, which consumers drop at
their inbox. A transaction-scoped advisory lock lets only one instance of a service
relay at a time, so rows reach Kafka in the order they were written.
"""

from __future__ import annotations

import asyncio
import logging
import zlib

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.faults import crash_point

__all__ = ["OutboxRelay"]

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        schema: str,
        batch_size: int = 500,
        idle_poll_seconds: float = 0.2,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._lock_key = zlib.crc32(f"outbox|{schema}".encode())
        self._batch_size = batch_size
        self._idle_poll = idle_poll_seconds
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        self._wake.set()

    async def relay_once(self) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", self._lock_key):
                return 0
            rows = await conn.fetch(
                "SELECT id, topic, key, event_type, value FROM outbox ORDER BY id LIMIT $1",
                self._batch_size,
            )
            if not rows:
                return 0
            deliveries = [
                await self._producer.send(
                    row["topic"],
                    value=row["value"],
                    key=row["key"].encode(),
                    headers=[("event_type", row["event_type"].encode())],
                )
                for row in rows
            ]
            await asyncio.gather(*deliveries)
            crash_point("relay.after_publish_before_delete")  # the broker has them, the rows are still here
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows])
        self.published += len(rows)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.1
        while True:
            try:
                relayed = await self.relay_once()
                backoff = 0.1
            except Exception as exc:  # broker or database away: the rows stay, the next round retries
                if stop.is_set():
                    log.warning("stopping with outbox rows unrelayed (%s): the next start sends them",
                                type(exc).__name__)
                    return
                log.warning("outbox relay failed (%s), retrying in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if relayed:
                continue
            if stop.is_set():
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._idle_poll)
            except TimeoutError:
                pass
