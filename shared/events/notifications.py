"""Events of the notifier: one per issued code, naming the stable Message-ID used."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.events.envelope import Event
from shared.events.types import CodeId, Instant, ShipmentId

__all__ = ["NotificationFailed", "NotificationSent"]


class NotificationSent(Event):
    event_type: ClassVar[str] = "NotificationSent"

    shipment_id: ShipmentId
    code_id: CodeId
    message_id: str = Field(max_length=200)
    language: str = Field(max_length=8)
    accepted_at: Instant
    send_attempts: int = Field(ge=1)

    def key(self) -> str:
        return self.shipment_id


class NotificationFailed(Event):
    event_type: ClassVar[str] = "NotificationFailed"

    shipment_id: ShipmentId
    code_id: CodeId
    reason: str = Field(max_length=300)
    failed_at: Instant
    send_attempts: int = Field(ge=1)

    def key(self) -> str:
        return self.shipment_id
