"""Constrained field types the event models share."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, Field, StringConstraints

__all__ = ["CodeId", "CourierId", "Currency", "IanaZone", "Money", "ShipmentId", "zone_info"]

ShipmentId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
CourierId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
CodeId = Annotated[str, StringConstraints(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9._:-]+$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("10000000"), max_digits=12, decimal_places=2)]

_ZONES = frozenset(available_timezones())


def _known_zone(name: str) -> str:
    if name not in _ZONES:
        raise ValueError("not an IANA time zone")
    return name


IanaZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_zone)]


def zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)
