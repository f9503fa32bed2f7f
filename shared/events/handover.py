"""The courier gateway's attempts at the door and the verifier's decisions.

The code as entered travels sealed with the gateway's key ring (`attempt` keys), so
not even the attempts topic holds a candidate code in the clear.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events.codes import SealedCode
from shared.events.envelope import Event
from shared.events.types import CodeId, CourierId, ShipmentId

__all__ = [
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


class Receiver(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["customer", "neighbour"]
    name: str | None = Field(default=None, max_length=200)


class HandoverAttempted(Event):
    event_type: ClassVar[str] = "HandoverAttempted"

    attempt_id: str = Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    shipment_id: ShipmentId
    courier_id: CourierId
    terminal_id: str = Field(min_length=1, max_length=64)
    entered_code: SealedCode
    receiver: Receiver
    attempted_at: AwareDatetime

    def key(self) -> str:
        return self.shipment_id


class HandoverDecided(Event):
    event_type: ClassVar[str] = "HandoverDecided"

    attempt_id: str
    shipment_id: ShipmentId
    courier_id: CourierId
    outcome: Literal["accepted", "rejected"]
    reason: RejectionReason | None
    tries_left: int = Field(ge=0)
    receiver: Receiver
    code_id: CodeId | None
    day_number: int | None = None
    attempted_at: AwareDatetime
    decided_at: AwareDatetime

    def key(self) -> str:
        return self.shipment_id
