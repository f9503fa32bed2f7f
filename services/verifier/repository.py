"""The verifier's tables, used inside the caller's unit of work."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.verifier.domain import Assignment, CodeState, CodeStatus, ShipmentState, WindowAttempt
from shared.events import CourierAssigned, OtpIssued

__all__ = ["AsyncpgVerifierRepository", "StoredCode"]


@dataclass(frozen=True)
class StoredCode:
    state: CodeState
    shipment_id: str
    delivery_date: date
    delivery_zone: str
    digest_key_id: str
    digest: str


def _code(row: asyncpg.Record) -> StoredCode:
    return StoredCode(
        state=CodeState(
            code_id=row["code_id"],
            day_number=row["day_number"],
            valid_from=row["valid_from"],
            valid_until=row["valid_until"],
            status=CodeStatus(row["status"]),
            wrong_tries=row["wrong_tries"],
            max_attempts=row["max_attempts"],
            neighbour_allowed=row["neighbour_allowed"],
        ),
        shipment_id=row["shipment_id"],
        delivery_date=row["delivery_date"],
        delivery_zone=row["delivery_zone"],
        digest_key_id=row["digest_key_id"],
        digest=row["digest"],
    )


class AsyncpgVerifierRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def lock_day(self, local_date: date, zone: str) -> None:
        """Serialises a day's close with codes arriving for that day, across instances."""
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"day|{zone}|{local_date}".encode())
        )

    async def is_day_closed(self, local_date: date, zone: str) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT 1 FROM closed_days WHERE local_date = $1 AND delivery_zone = $2", local_date, zone))

    async def close_day(self, local_date: date, zone: str, closed_at: datetime) -> bool:
        inserted = await self._conn.fetchval(
            "INSERT INTO closed_days (local_date, delivery_zone, closed_at) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING 1", local_date, zone, closed_at)
        return inserted is not None

    async def expire_open_codes(self, local_date: date, zone: str) -> list[tuple[StoredCode, bool]]:
        """Expires the day's unused codes; returns each with whether it had been locked."""
        rows = await self._conn.fetch(
            """WITH open AS (
                   SELECT code_id, status AS old_status FROM codes
                   WHERE delivery_date = $1 AND delivery_zone = $2 AND status IN ('active', 'locked')
                   FOR UPDATE)
               UPDATE codes SET status = 'expired', updated_at = now()
               FROM open WHERE codes.code_id = open.code_id
               RETURNING codes.*, open.old_status""",
            local_date, zone)
        return [(_code(row), row["old_status"] == "locked") for row in rows]

    async def expire_code(self, code_id: str) -> None:
        await self._conn.execute(
            "UPDATE codes SET status = 'expired', updated_at = now() WHERE code_id = $1", code_id)

    async def upsert_shipment(self, shipment_id: str, code_required: bool) -> None:
        await self._conn.execute(
            "INSERT INTO shipments (shipment_id, code_required) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            shipment_id, code_required)

    async def mark_returned(self, shipment_id: str) -> None:
        await self._conn.execute("UPDATE shipments SET returned = true WHERE shipment_id = $1", shipment_id)

    async def add_code(self, event: OtpIssued, status: CodeStatus) -> bool:
        """False for a code already known, or older than the newest one: a replay changes nothing."""
        newest = await self._conn.fetchval(
            "SELECT max(day_number) FROM codes WHERE shipment_id = $1", event.shipment_id)
        if newest is not None and event.day_number <= newest:
            return False
        await self._conn.execute(
            """UPDATE codes SET status = 'superseded', updated_at = now()
               WHERE shipment_id = $1 AND status IN ('active', 'locked') AND day_number < $2""",
            event.shipment_id, event.day_number)
        inserted = await self._conn.fetchval(
            """INSERT INTO codes (code_id, shipment_id, day_number, delivery_date, delivery_zone,
                   valid_from, valid_until, digest_key_id, digest, status, max_attempts, neighbour_allowed)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
               ON CONFLICT (code_id) DO NOTHING RETURNING 1""",
            event.code_id, event.shipment_id, event.day_number, event.delivery_date, event.delivery_zone,
            event.valid_from, event.valid_until, event.digest.key_id, event.digest.hmac_sha256,
            status.value, event.max_attempts, event.neighbour_allowed)
        if inserted:
            await self._conn.execute(
                "UPDATE shipments SET current_code_id = $2 WHERE shipment_id = $1", event.shipment_id,
                event.code_id)
        return inserted is not None

    async def lock_shipment(self, shipment_id: str) -> tuple[ShipmentState, list[StoredCode]] | None:
        shipment = await self._conn.fetchrow(
            "SELECT * FROM shipments WHERE shipment_id = $1 FOR UPDATE", shipment_id)
        if shipment is None:
            return None
        # Locked, so a day's close and a handover of the same code serialise: whichever
        # comes second sees the other's result (expired, or consumed) and keeps it.
        rows = await self._conn.fetch(
            "SELECT * FROM codes WHERE shipment_id = $1 ORDER BY day_number DESC FOR UPDATE", shipment_id)
        codes = [_code(row) for row in rows]
        current = next((c for c in codes if c.state.code_id == shipment["current_code_id"]), None)
        state = ShipmentState(
            code_required=shipment["code_required"],
            returned=shipment["returned"],
            current=current.state if current else None,
        )
        return state, codes

    async def update_code(self, code: CodeState, received_by: dict[str, Any] | None) -> None:
        await self._conn.execute(
            """UPDATE codes SET status = $2, wrong_tries = $3, received_by = $4::jsonb, updated_at = now()
               WHERE code_id = $1 AND status IN ('active', 'locked')""",
            code.code_id, code.status.value, code.wrong_tries,
            json.dumps(received_by) if received_by is not None else None)

    async def stored_decision(self, attempt_id: str) -> dict[str, Any] | None:
        raw = await self._conn.fetchval("SELECT decision FROM attempts WHERE attempt_id = $1", attempt_id)
        return json.loads(raw) if raw is not None else None

    async def is_parked(self, attempt_id: str) -> bool:
        return bool(await self._conn.fetchval("SELECT 1 FROM parked_attempts WHERE attempt_id = $1", attempt_id))

    async def record_decision(self, attempt_id: str, shipment_id: str, decision: dict[str, Any],
                              decided_at: datetime) -> None:
        await self._conn.execute(
            """INSERT INTO attempts (attempt_id, shipment_id, decision, decided_at, courier_id, terminal_id,
                   accepted, reason)
               VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8)""",
            attempt_id, shipment_id, json.dumps(decision), decided_at, decision["courier_id"],
            decision.get("terminal_id"), decision["outcome"] == "accepted", decision["reason"])

    async def upsert_assignment(self, event: CourierAssigned) -> None:
        """The latest plan for a day wins: a parcel handed to another courier moves with it."""
        await self._conn.execute(
            """INSERT INTO assignments (shipment_id, delivery_date, courier_id, terminal_id, out_for_delivery_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (shipment_id, delivery_date) DO UPDATE
               SET courier_id = EXCLUDED.courier_id, terminal_id = EXCLUDED.terminal_id,
                   out_for_delivery_at = EXCLUDED.out_for_delivery_at""",
            event.shipment_id, event.delivery_date, event.courier_id, event.terminal_id,
            event.out_for_delivery_at)

    async def lock_shipment_key(self, shipment_id: str) -> None:
        """Serialises a shipment's attempts with the arrival of its codes, even before it has a row."""
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"shipment|{shipment_id}".encode()))

    async def latest_assignment_date(self, shipment_id: str) -> date | None:
        return await self._conn.fetchval(
            "SELECT max(delivery_date) FROM assignments WHERE shipment_id = $1", shipment_id)

    async def park(self, attempt_id: str, shipment_id: str, envelope: dict[str, Any], received_at: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO parked_attempts (attempt_id, shipment_id, envelope, received_at) "
            "VALUES ($1, $2, $3::jsonb, $4) ON CONFLICT DO NOTHING",
            attempt_id, shipment_id, json.dumps(envelope), received_at)

    async def take_parked(self, shipment_id: str) -> list[tuple[dict[str, Any], datetime]]:
        rows = await self._conn.fetch(
            "DELETE FROM parked_attempts WHERE shipment_id = $1 RETURNING envelope, received_at, parked_at",
            shipment_id)
        return [(json.loads(row["envelope"]), row["received_at"])
                for row in sorted(rows, key=lambda row: row["parked_at"])]

    async def overdue_parked_shipments(self, older_than_seconds: float) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT DISTINCT shipment_id FROM parked_attempts WHERE parked_at < now() - make_interval(secs => $1)",
            older_than_seconds)
        return [row["shipment_id"] for row in rows]

    async def assignment_for(self, shipment_id: str, delivery_date: date) -> Assignment | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM assignments WHERE shipment_id = $1 AND delivery_date = $2", shipment_id, delivery_date)
        if row is None:
            return None
        return Assignment(row["courier_id"], row["terminal_id"], row["out_for_delivery_at"])

    async def window_attempts(self, subject: str, subject_id: str, since: datetime) -> list[WindowAttempt]:
        column = {"courier": "courier_id", "terminal": "terminal_id"}[subject]
        rows = await self._conn.fetch(
            f"SELECT shipment_id, accepted, reason FROM attempts WHERE {column} = $1 AND decided_at >= $2",  # noqa: S608
            subject_id, since)
        return [WindowAttempt(row["shipment_id"], bool(row["accepted"]), row["reason"]) for row in rows]

    async def has_open_flag(self, subject: str, subject_id: str) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT 1 FROM flags WHERE subject = $1 AND subject_id = $2 AND cleared_at IS NULL",
            subject, subject_id))

    async def open_flag(self, subject: str, subject_id: str, at: datetime, failed: int, tries: int) -> bool:
        inserted = await self._conn.fetchval(
            """INSERT INTO flags (subject, subject_id, flagged_at, failed_shipments, wrong_tries)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (subject, subject_id) WHERE cleared_at IS NULL DO NOTHING RETURNING 1""",
            subject, subject_id, at, failed, tries)
        return inserted is not None

    async def last_cleared(self, subject: str, subject_id: str) -> datetime | None:
        return await self._conn.fetchval(
            "SELECT max(cleared_at) FROM flags WHERE subject = $1 AND subject_id = $2", subject, subject_id)

    async def clear_flag(self, subject: str, subject_id: str, at: datetime, by: str) -> None:
        await self._conn.execute(
            "UPDATE flags SET cleared_at = $3, cleared_by = $4 "
            "WHERE subject = $1 AND subject_id = $2 AND cleared_at IS NULL",
            subject, subject_id, at, by)
