"""The asyncpg pool of one service, pinned to that service's own schema."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.errors import TransientError

__all__ = ["CONNECTION_ERRORS", "create_pool", "lean_reset"]

log = logging.getLogger(__name__)

# What "the database is away for a while" looks like from asyncpg: retry, never dead-letter.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    TransientError,
)


async def lean_reset(conn: asyncpg.Connection) -> None:
    """Release a connection without asyncpg's default reset query.

    That query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is one more round trip
    per transaction, i.e. per consumed event. It undoes nothing here: every lock is
    transaction-scoped, settings are SET LOCAL, nothing listens and no cursor outlives
    its transaction. asyncpg still rolls back a transaction left open before it calls
    this (`tests/integration/test_pool.py` shows both).
    """


async def create_pool(dsn: str, schema: str, max_size: int, attempts: int = 30, lean: bool = True) -> asyncpg.Pool:
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_size,
                server_settings={"search_path": schema, "application_name": schema},
                command_timeout=30,
                reset=lean_reset if lean else None,
            )
            assert pool is not None
            return pool
        except CONNECTION_ERRORS as exc:
            if attempt == attempts:
                raise
            log.warning("database not reachable (%s), retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")
