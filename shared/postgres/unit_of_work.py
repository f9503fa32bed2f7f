"""One transaction per consumed event: inbox claim, state change, outbox rows, commit.

    async with uow_factory() as uow:
        if not await uow.claim(envelope):
            return                      # already done: a redelivery
        ...change state with uow.conn...
        uow.emit(topic, outgoing_envelope)

The outbox rows are written just before commit, inside the same transaction, so the
events exist exactly when the state change does. The relay is woken after commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import asyncpg

from shared.events.envelope import Envelope
from shared.events.registry import encode
from shared.faults import crash_point

__all__ = ["UnitOfWork", "UnitOfWorkFactory", "unit_of_work_factory"]


class UnitOfWork:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._pending: list[tuple[str, Envelope]] = []

    async def claim(self, envelope: Envelope) -> bool:
        """False when this event id was already processed: the caller must do nothing."""
        inserted = await self.conn.fetchval(
            "INSERT INTO inbox (event_id, event_type) VALUES ($1, $2) "
            "ON CONFLICT (event_id, event_type) DO NOTHING RETURNING 1",
            envelope.event_id, envelope.event_type,
        )
        return inserted is not None

    def emit(self, topic: str, envelope: Envelope) -> None:
        self._pending.append((topic, envelope))

    async def _flush(self) -> int:
        if not self._pending:
            return 0
        await self.conn.executemany(
            "INSERT INTO outbox (event_id, topic, key, event_type, value) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (event_id) DO NOTHING",
            [(env.event_id, topic, env.key, env.event_type, encode(env)) for topic, env in self._pending],
        )
        return len(self._pending)


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


def unit_of_work_factory(pool: asyncpg.Pool, on_commit: Callable[[], None]) -> UnitOfWorkFactory:
    @asynccontextmanager
    async def begin() -> AsyncIterator[UnitOfWork]:
        async with pool.acquire() as conn, conn.transaction():
            uow = UnitOfWork(conn)
            yield uow
            emitted = await uow._flush()
        if emitted:
            crash_point("outbox.after_commit")  # committed, outbox rows not yet relayed
            on_commit()

    return begin
