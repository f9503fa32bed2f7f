"""Events about one-time codes: issued by the issuer, expired by the verifier.

`OtpIssued` never carries the code in the clear: `sealed` opens only with the
customer-facing key ring, and `digest` is an HMAC the verifier can check a candidate
against. The associated data and the HMAC context are `code_context(...)`.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Event
from shared.events.shipments import Recipient
from shared.events.types import CodeId, IanaZone, Instant, ShipmentId

__all__ = ["CodeExpired", "OtpIssued", "OtpNotRequired", "SealedCode", "CodeDigest", "code_context"]


def code_context(shipment_id: str, code_id: str) -> bytes:
    return f"otp-code|{shipment_id}|{code_id}".encode()


class SealedCode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(min_length=1, max_length=64)
    blob: str = Field(min_length=16, max_length=256)


class CodeDigest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(min_length=1, max_length=64)
    hmac_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class OtpIssued(Event):
    """A new code for one shipment and one delivery day; supersedes any earlier code."""

    event_type: ClassVar[str] = "OtpIssued"

    shipment_id: ShipmentId
    code_id: CodeId
    order_reference: str = Field(min_length=1, max_length=64)
    delivery_date: date
    delivery_zone: IanaZone
    day_number: int = Field(ge=1, le=30)
    valid_from: Instant
    valid_until: Instant
    max_attempts: int = Field(ge=1, le=20)
    neighbour_allowed: bool
    recipient: Recipient
    sealed: SealedCode
    digest: CodeDigest

    def key(self) -> str:
        return self.shipment_id


class OtpNotRequired(Event):
    """The shipment is below its threshold or its carrier needs no code; no figures are given."""

    event_type: ClassVar[str] = "OtpNotRequired"

    shipment_id: ShipmentId
    delivery_date: date

    def key(self) -> str:
        return self.shipment_id


class CodeExpired(Event):
    """A code's day closed before the parcel was handed over (unused or locked)."""

    event_type: ClassVar[str] = "CodeExpired"

    shipment_id: ShipmentId
    code_id: CodeId
    delivery_date: date
    delivery_zone: IanaZone
    day_number: int = Field(ge=1, le=30)
    was_locked: bool
    expired_at: Instant

    def key(self) -> str:
        return self.shipment_id


NotificationOutcome = Literal["sent", "failed"]
