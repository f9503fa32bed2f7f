"""Constrained field types the event models share."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, AwareDatetime, EmailStr, Field, StringConstraints

__all__ = [
    "AsciiEmail",
    "CodeId",
    "CourierId",
    "Currency",
    "IanaZone",
    "Instant",
    "Money",
    "PlainText",
    "ShipmentId",
    "zone_info",
]

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


def _plain(text: str) -> str:
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text):
        raise ValueError("control or formatting characters are not allowed")
    return text


PlainText = Annotated[str, AfterValidator(_plain)]
"""Text shown to people (names, references): no control, line or bidi-formatting characters."""


def _ascii(address: str) -> str:
    if not address.isascii():
        raise ValueError("only ASCII email addresses can be mailed (no SMTPUTF8 relay configured)")
    return address


AsciiEmail = Annotated[EmailStr, AfterValidator(_ascii)]


def _plausible(instant: datetime) -> datetime:
    if not 2000 <= instant.year <= 2100:
        raise ValueError("timestamp outside the years 2000 to 2100")
    return instant


Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]
"""A timezone-aware instant in a plausible range: far-past or far-future times are refused."""
