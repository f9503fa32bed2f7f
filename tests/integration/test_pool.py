"""The lean pool release on the real PostgreSQL: nothing a transaction did leaks into the next user."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from shared.postgres.migrations import RUNTIME_MIGRATIONS, apply_migrations
from shared.postgres.pool import create_pool

pytestmark = pytest.mark.integration


async def test_a_connection_comes_back_clean_after_a_failed_transaction(stack_env: dict[str, str]):
    dsn = stack_env["OTP_PG_DSN"]
    schema = f"pool{secrets.token_hex(3)}"
    admin = await asyncpg.connect(dsn)
    await apply_migrations(admin, schema, {"runtime": RUNTIME_MIGRATIONS})
    pool = await create_pool(dsn, schema, max_size=1)
    try:
        with pytest.raises(ZeroDivisionError):
            async with pool.acquire() as conn:
                transaction = conn.transaction()
                await transaction.start()  # left open on purpose: the error skips commit and rollback
                await conn.execute("SET LOCAL statement_timeout = '1s'")
                await conn.execute("SELECT pg_advisory_xact_lock(42)")
                await conn.execute("INSERT INTO inbox (event_id, event_type) VALUES (gen_random_uuid(), 'X')")
                raise ZeroDivisionError
        async with pool.acquire() as conn:  # max_size=1: the very same connection
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM inbox") == 0
            assert await conn.fetchval("SHOW statement_timeout") == "0"
            held_locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            assert await conn.fetchval(held_locks) == 0
            assert await conn.fetchval("SHOW search_path") == schema
    finally:
        await pool.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
