"""The asyncpg pool of one service, pinned to that service's own schema."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shared.errors import TransientError

__all__ = ["CONNECTION_ERRORS", "create_pool"]

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


async def create_pool(dsn: str, schema: str, max_size: int, attempts: int = 30) -> asyncpg.Pool:
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max_size,
                server_settings={"search_path": schema, "application_name": schema},
                command_timeout=30,
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
