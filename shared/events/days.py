"""The scheduler's end-of-day events: one per local delivery date and time zone."""

from __future__ import annotations

import uuid
from datetime import date
from typing import ClassVar

from shared.events.envelope import EVENT_ID_NAMESPACE, Event
from shared.events.types import IanaZone, Instant

__all__ = ["DayClosed", "day_closed_event_id"]


class DayClosed(Event):
    event_type: ClassVar[str] = "DayClosed"

    local_date: date
    zone: IanaZone
    closed_at: Instant

    def key(self) -> str:
        return f"{self.zone}|{self.local_date.isoformat()}"


def day_closed_event_id(local_date: date, zone: str) -> uuid.UUID:
    """One id per (date, zone): however many schedulers run, consumers see one event."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"DayClosed|{zone}|{local_date.isoformat()}")
