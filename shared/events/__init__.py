"""Versioned event models, the envelope, the codec and the topic names."""

from shared.events.codes import CodeDigest, CodeExpired, OtpIssued, OtpNotRequired, SealedCode, code_context
from shared.events.days import DayClosed, day_closed_event_id
from shared.events.envelope import Envelope, Event, derived_event_id
from shared.events.handover import (
    CourierAssigned,
    CourierCleared,
    CourierFlagged,
    HandoverAttempted,
    HandoverDecided,
    Receiver,
    RejectionReason,
    attempt_context,
)
from shared.events.notifications import NotificationFailed, NotificationSent
from shared.events.registry import EVENT_MODELS, decode, encode
from shared.events.shipments import Recipient, RedeliveryQueued, ShipmentDispatched, ShipmentReturned
from shared.events.topics import Topics

__all__ = [
    "EVENT_MODELS",
    "CodeDigest",
    "CodeExpired",
    "CourierAssigned",
    "CourierCleared",
    "CourierFlagged",
    "DayClosed",
    "Envelope",
    "Event",
    "HandoverAttempted",
    "HandoverDecided",
    "NotificationFailed",
    "NotificationSent",
    "OtpIssued",
    "OtpNotRequired",
    "Receiver",
    "Recipient",
    "RedeliveryQueued",
    "RejectionReason",
    "SealedCode",
    "ShipmentDispatched",
    "ShipmentReturned",
    "Topics",
    "attempt_context",
    "code_context",
    "day_closed_event_id",
    "decode",
    "derived_event_id",
    "encode",
]
