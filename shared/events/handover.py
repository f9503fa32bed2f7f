"""The courier gateway's attempts at the door and the verifier's decisions.

The code as entered travels sealed with the gateway's key ring (`attempt` keys), so
not even the attempts topic holds a candidate code in the clear.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.codes import SealedCode
from shared.events.envelope import Event
from shared.events.types import CodeId, CourierId, Instant, PlainText, ShipmentId

__all__ = [
    "CourierAssigned",
    "CourierCleared",
    "CourierFlagged",
    "HandoverAttempted",
    "HandoverDecided",
    "Receiver",
    "RejectionReason",
    "attempt_context",
]


def attempt_context(attempt_id: str, shipment_id: str) -> bytes:
    return f"otp-attempt|{attempt_id}|{shipment_id}".encode()


class RejectionReason(StrEnum):
    WRONG_CODE = "wrong_code"
    EXPIRED = "expired"
    LOCKED = "locked"
    SUPERSEDED = "superseded"
    ALREADY_DELIVERED = "already_delivered"
    UNKNOWN_SHIPMENT = "unknown_shipment"
    NOT_REQUIRED = "not_required"
    NEIGHBOUR_NOT_ALLOWED = "neighbour_not_allowed"
    RETURNED = "returned"
    NOT_ASSIGNED = "not_assigned"
    NOT_OUT_FOR_DELIVERY = "not_out_for_delivery"
    COURIER_BLOCKED = "courier_blocked"


class Receiver(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["customer", "neighbour"]
    name: PlainText | None = Field(default=None, max_length=200)


class HandoverAttempted(Event):
    event_type: ClassVar[str] = "HandoverAttempted"

    attempt_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    shipment_id: ShipmentId
    courier_id: CourierId
    terminal_id: str = Field(min_length=1, max_length=64)
    entered_code: SealedCode
    receiver: Receiver
    attempted_at: Instant

    def key(self) -> str:
        return self.shipment_id


class HandoverDecided(Event):
    event_type: ClassVar[str] = "HandoverDecided"

    attempt_id: str
    shipment_id: ShipmentId
    courier_id: CourierId
    terminal_id: str | None = Field(default=None, max_length=64)
    outcome: Literal["accepted", "rejected"]
    reason: RejectionReason | None
    tries_left: int = Field(ge=0)
    receiver: Receiver
    code_id: CodeId | None
    day_number: int | None = None
    attempted_at: Instant
    decided_at: Instant

    def key(self) -> str:
        return self.shipment_id


class CourierAssigned(Event):
    """The gateway's plan: this courier and terminal carry the parcel on this delivery day.

    It travels on the attempts topic, keyed by shipment, so the verifier always sees a
    shipment's assignment before the attempts made under it.
    """

    event_type: ClassVar[str] = "CourierAssigned"

    shipment_id: ShipmentId
    delivery_date: date
    courier_id: CourierId
    terminal_id: str = Field(min_length=1, max_length=64)
    out_for_delivery_at: Instant

    def key(self) -> str:
        return self.shipment_id


class CourierFlagged(Event):
    """A courier's or terminal's failures across parcels look like guessing; ops should look."""

    event_type: ClassVar[str] = "CourierFlagged"

    subject: Literal["courier", "terminal"]
    subject_id: str = Field(min_length=1, max_length=64)
    reason: Literal["guessing_pattern"]
    failed_shipments: int = Field(ge=0)
    wrong_tries: int = Field(ge=0)
    window_start: Instant
    window_end: Instant
    policy: Literal["alert", "refuse"]

    def key(self) -> str:
        return f"{self.subject}:{self.subject_id}"


class CourierCleared(Event):
    """An operator looked into a flag and lets the courier or terminal work again."""

    event_type: ClassVar[str] = "CourierCleared"

    subject: Literal["courier", "terminal"]
    subject_id: str = Field(min_length=1, max_length=64)
    cleared_by: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=500)

    def key(self) -> str:
        return f"{self.subject}:{self.subject_id}"
