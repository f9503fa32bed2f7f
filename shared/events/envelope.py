"""The envelope every message carries, and the base of every payload model.

Payload models are frozen and strict: a field they do not know, a wrong type or a
missing field is a `BadEvent`. A new field means a new schema version with an upcaster
(see `registry`), so consumers always see the latest shape.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.events.types import Instant

__all__ = ["Envelope", "Event", "EVENT_ID_NAMESPACE", "derived_event_id"]

EVENT_ID_NAMESPACE = uuid.UUID("5b0f3c1e-4d8a-4a57-9a43-2f7d8c1e6a90")


class Event(BaseModel):
    """A payload. Subclasses set `event_type` and `schema_version` and define `key()`."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    def key(self) -> str:
        """The Kafka message key: the shipment id, so one shipment's events stay in order."""
        raise NotImplementedError


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: uuid.UUID
    event_type: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9]*$")
    schema_version: int = Field(ge=1, le=1000)
    occurred_at: Instant
    key: str = Field(min_length=1, max_length=128)
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        occurred_at: datetime,
        event_id: uuid.UUID | None = None,
        cause: Envelope | None = None,
    ) -> Envelope:
        new_id = event_id or uuid.uuid4()
        return cls(
            event_id=new_id,
            event_type=event.event_type,
            schema_version=event.schema_version,
            occurred_at=occurred_at,
            key=event.key(),
            correlation_id=cause.correlation_id if cause else new_id,
            causation_id=cause.event_id if cause else None,
            payload=event.model_dump(mode="json"),
        )


def derived_event_id(cause_id: uuid.UUID, event_type: str, discriminator: str = "") -> uuid.UUID:
    """A deterministic id for an event caused by another, so a replay yields the same id."""
    return uuid.uuid5(EVENT_ID_NAMESPACE, f"{cause_id}|{event_type}|{discriminator}")
