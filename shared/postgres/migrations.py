"""Numbered SQL migrations, applied at start-up into the service's own schema.

Files are `NNN_description.sql`. The runtime's own tables (inbox, outbox) form the
`runtime` track, the service's tables its own track. An advisory lock serialises
instances that start at the same time.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import asyncpg

__all__ = ["RUNTIME_MIGRATIONS", "apply_migrations"]

RUNTIME_MIGRATIONS = Path(__file__).with_name("migrations")
_FILE = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def _quote(identifier: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", identifier):
        raise ValueError(f"unsafe schema name {identifier!r}")
    return f'"{identifier}"'


async def apply_migrations(conn: asyncpg.Connection, schema: str, tracks: dict[str, Path]) -> list[str]:
    applied: list[str] = []
    lock_key = zlib.crc32(f"migrations|{schema}".encode())
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(schema)}")
        await conn.execute(f"SET LOCAL search_path TO {_quote(schema)}")
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   track text NOT NULL, version int NOT NULL, name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (track, version))"""
        )
        for track, folder in tracks.items():
            done = {
                row["version"]
                for row in await conn.fetch("SELECT version FROM schema_migrations WHERE track = $1", track)
            }
            for path in sorted(folder.glob("*.sql")):
                match = _FILE.match(path.name)
                if not match or int(match.group(1)) in done:
                    continue
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (track, version, name) VALUES ($1, $2, $3)",
                    track, int(match.group(1)), path.name,
                )
                applied.append(f"{track}/{path.name}")
    return applied
