"""The exception tree of the shared runtime, drawn in one place.

The consumer loop branches on these classes only: a `BadEvent` is dead-lettered at
once, a `TransientError` is retried with backoff for as long as it lasts, and any other
exception is retried a few times and then dead-lettered as a poison message.
"""

from __future__ import annotations

__all__ = [
    "BadEvent",
    "ConfigurationError",
    "OtpError",
    "SealError",
    "TransientError",
    "UnknownEventType",
    "UnsupportedVersion",
]


class OtpError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigurationError(OtpError):
    """A setting is missing or malformed; raised at start-up, naming the variable."""


class BadEvent(OtpError):
    """An inbound message that can never be processed; goes to the dead-letter topic.

    `reason` is a short machine-readable slug, `detail` a human sentence. Neither may
    contain secrets: they are written to a topic header.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownEventType(BadEvent):
    def __init__(self, event_type: str) -> None:
        super().__init__("unknown_event_type", f"no handler or model for {event_type[:80]!r}")


class UnsupportedVersion(BadEvent):
    def __init__(self, event_type: str, version: int) -> None:
        super().__init__(
            "unsupported_version", f"{event_type[:80]} has no schema version {version}"
        )


class TransientError(OtpError):
    """A dependency is away for a while (database, broker, SMTP); retry, never dead-letter."""


class SealError(OtpError):
    """A sealed value cannot be opened: unknown key id or failed authentication."""
