"""Events about a shipment, from upstream fulfilment and from the issuer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from shared.events.envelope import Event
from shared.events.types import Currency, IanaZone, Money, ShipmentId

__all__ = ["Recipient", "ShipmentDispatched", "ShipmentReturned", "RedeliveryQueued"]

Locale = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$")]
Carrier = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class Recipient(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    locale: Locale = "en"


class ShipmentDispatched(Event):
    """Upstream says a parcel has left the warehouse for its first delivery day."""

    event_type: ClassVar[str] = "ShipmentDispatched"

    shipment_id: ShipmentId
    order_reference: str = Field(min_length=1, max_length=64)
    dispatched_at: AwareDatetime
    delivery_date: date
    delivery_zone: IanaZone
    goods_value: Money
    currency: Currency
    carrier: Carrier
    recipient: Recipient
    neighbour_allowed: bool = True

    def key(self) -> str:
        return self.shipment_id


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
