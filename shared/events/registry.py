"""Decoding and encoding of messages: strict, versioned, and never trusting the bytes.

`decode` turns raw bytes into the envelope and the latest payload model, raising
`BadEvent` with a reason for anything it cannot accept. Older schema versions pass
through their upcasters first, so handlers only ever see the newest shape.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from shared.errors import BadEvent, UnknownEventType, UnsupportedVersion
from shared.events.codes import CodeExpired, OtpIssued, OtpNotRequired
from shared.events.days import DayClosed
from shared.events.envelope import Envelope, Event
from shared.events.handover import (
    CourierAssigned,
    CourierCleared,
    CourierFlagged,
    HandoverAttempted,
    HandoverDecided,
)
from shared.events.notifications import NotificationFailed, NotificationSent
from shared.events.shipments import RedeliveryQueued, ShipmentDispatched, ShipmentReturned

__all__ = ["EVENT_MODELS", "MAX_MESSAGE_BYTES", "decode", "encode", "validation_summary"]

MAX_MESSAGE_BYTES = 64 * 1024

EVENT_MODELS: dict[str, type[Event]] = {
    model.event_type: model
    for model in (
        ShipmentDispatched,
        RedeliveryQueued,
        ShipmentReturned,
        OtpIssued,
        OtpNotRequired,
        CodeExpired,
        NotificationSent,
        NotificationFailed,
        HandoverAttempted,
        HandoverDecided,
        CourierAssigned,
        CourierFlagged,
        CourierCleared,
        DayClosed,
    )
}

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (event type, version) -> function turning that version's payload into version + 1.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise BadEvent("duplicate_key", f"JSON object repeats the key {key[:40]!r}")
        document[key] = value
    return document


def validation_summary(error: ValidationError) -> str:
    """Where and what, without the offending input: inputs may hold personal data."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(step) for step in item["loc"]) or "(root)"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)[:500]


def _parse_json(raw: bytes) -> Any:
    if len(raw) > MAX_MESSAGE_BYTES:
        raise BadEvent("oversized", f"{len(raw)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadEvent("not_utf8", "message value is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicate_keys, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise BadEvent("not_json", f"invalid JSON at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadEvent("not_json", "JSON nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise BadEvent("not_json", f"unreadable JSON value ({type(exc).__name__})") from None


def _no_constants(name: str) -> Any:
    raise BadEvent("not_json", f"JSON constant {name} is not allowed")


def decode(raw: bytes | None, allowed_types: frozenset[str] | None = None) -> tuple[Envelope, Event]:
    """`allowed_types`: the event types the topic may carry; any other is refused as
    `wrong_topic`, so a writer of one topic cannot slip in another topic's events."""
    if raw is None:
        raise BadEvent("empty", "message has no value")
    document = _parse_json(raw)
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        raise BadEvent("invalid_envelope", validation_summary(exc)) from None
    model = EVENT_MODELS.get(envelope.event_type)
    if model is None:
        raise UnknownEventType(envelope.event_type)
    if allowed_types is not None and envelope.event_type not in allowed_types:
        raise BadEvent("wrong_topic", f"{envelope.event_type} does not belong on this topic")
    payload = envelope.payload
    version = envelope.schema_version
    while version < model.schema_version:
        upcaster = UPCASTERS.get((envelope.event_type, version))
        if upcaster is None:
            raise UnsupportedVersion(envelope.event_type, envelope.schema_version)
        payload = upcaster(payload)
        version += 1
    if version != model.schema_version:
        raise UnsupportedVersion(envelope.event_type, envelope.schema_version)
    try:
        event = model.model_validate(payload)
    except ValidationError as exc:
        raise BadEvent("invalid_payload", f"{envelope.event_type}: {validation_summary(exc)}") from None
    if event.key() != envelope.key:
        raise BadEvent("key_mismatch", "envelope key does not match the payload's shipment")
    return envelope, event


def encode(envelope: Envelope) -> bytes:
    return envelope.model_dump_json().encode()
