"""The issuer's tables, read and written inside the caller's unit of work."""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from services.issuer.domain import CodePlan
from shared.events import Recipient, ShipmentDispatched

__all__ = ["AsyncpgIssuerRepository", "ShipmentRow"]


@dataclass(frozen=True)
class ShipmentRow:
    shipment_id: str
    order_reference: str
    delivery_zone: str
    recipient: Recipient
    neighbour_allowed: bool
    status: str
    current_day: int | None


class AsyncpgIssuerRepository:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def add_shipment(self, event: ShipmentDispatched, code_required: bool) -> bool:
        """False when the shipment is already known (a repeated dispatch)."""
        inserted = await self._conn.fetchval(
            """INSERT INTO shipments (shipment_id, order_reference, delivery_zone, recipient,
                   neighbour_allowed, code_required, status, current_day, dispatched_at)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9)
               ON CONFLICT (shipment_id) DO NOTHING RETURNING 1""",
            event.shipment_id,
            event.order_reference,
            event.delivery_zone,
            event.recipient.model_dump_json(),
            event.neighbour_allowed,
            code_required,
            "out_for_delivery" if code_required else "no_code",
            1 if code_required else None,
            event.dispatched_at,
        )
        return inserted is not None

    async def lock_shipment(self, shipment_id: str) -> ShipmentRow | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM shipments WHERE shipment_id = $1 FOR UPDATE", shipment_id
        )
        if row is None:
            return None
        return ShipmentRow(
            shipment_id=row["shipment_id"],
            order_reference=row["order_reference"],
            delivery_zone=row["delivery_zone"],
            recipient=Recipient.model_validate(json.loads(row["recipient"])),
            neighbour_allowed=row["neighbour_allowed"],
            status=row["status"],
            current_day=row["current_day"],
        )

    async def add_code(self, shipment_id: str, plan: CodePlan, seal_key_id: str, sealed: str) -> None:
        await self._conn.execute(
            """INSERT INTO codes (code_id, shipment_id, day_number, delivery_date, valid_from,
                   valid_until, seal_key_id, sealed)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            plan.code_id, shipment_id, plan.day_number, plan.delivery_date, plan.valid_from,
            plan.valid_until, seal_key_id, sealed,
        )
        await self._conn.execute(
            "UPDATE shipments SET current_day = $2, updated_at = now() WHERE shipment_id = $1",
            shipment_id, plan.day_number,
        )

    async def mark_returned(self, shipment_id: str) -> None:
        await self._conn.execute(
            "UPDATE shipments SET status = 'returned', updated_at = now() WHERE shipment_id = $1",
            shipment_id,
        )
