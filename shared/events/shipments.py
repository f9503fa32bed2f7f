"""Events about a shipment, from upstream fulfilment and from the issuer."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events.envelope import Event
from shared.events.types import AsciiEmail, Currency, IanaZone, Instant, Money, PlainText, ShipmentId

__all__ = ["Recipient", "ShipmentDispatched", "ShipmentReturned", "RedeliveryQueued"]

Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")]
Carrier = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class Recipient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: PlainText = Field(min_length=1, max_length=200)
    email: AsciiEmail
    locale: Locale = "en"


class ShipmentDispatched(Event):
    """Upstream says a parcel has left the warehouse for its first delivery day."""

    event_type: ClassVar[str] = "ShipmentDispatched"

    shipment_id: ShipmentId
    order_reference: PlainText = Field(min_length=1, max_length=64)
    dispatched_at: Instant
    delivery_date: date
    delivery_zone: IanaZone
    goods_value: Money
    currency: Currency
    carrier: Carrier
    recipient: Recipient
    neighbour_allowed: bool = True

    @model_validator(mode="after")
    def _delivery_day_is_near_the_dispatch(self) -> ShipmentDispatched:
        left = self.dispatched_at.date()
        if not left - timedelta(days=2) <= self.delivery_date <= left + timedelta(days=MAX_DAYS_ON_THE_WAY):
            raise ValueError(f"delivery_date must lie within {MAX_DAYS_ON_THE_WAY} days of dispatched_at")
        return self

    def key(self) -> str:
        return self.shipment_id


MAX_DAYS_ON_THE_WAY = 180


class RedeliveryQueued(Event):
    """The issuer queued the parcel for another delivery day after an unused code expired."""

    event_type: ClassVar[str] = "RedeliveryQueued"

    shipment_id: ShipmentId
    previous_code_id: str
    delivery_date: date
    day_number: int = Field(ge=2, le=30)

    def key(self) -> str:
        return self.shipment_id


class ShipmentReturned(Event):
    """No one who knew the code was found on any allowed day: the parcel goes back."""

    event_type: ClassVar[str] = "ShipmentReturned"

    shipment_id: ShipmentId
    last_code_id: str
    days_attempted: int = Field(ge=1, le=30)

    def key(self) -> str:
        return self.shipment_id
