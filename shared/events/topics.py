"""Every topic name, in one place. A namespace prefix isolates test runs on one broker."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True)
class Topics:
    namespace: str

    @property
    def dispatched(self) -> str:
        """ShipmentDispatched, from upstream fulfilment."""
        return f"{self.namespace}.shipments.dispatched"

    @property
    def issuance(self) -> str:
        """OtpIssued, OtpNotRequired, RedeliveryQueued, ShipmentReturned, from the issuer."""
        return f"{self.namespace}.otp.issuance"

    @property
    def expiries(self) -> str:
        """CodeExpired, from the verifier."""
        return f"{self.namespace}.otp.expiries"

    @property
    def notifications(self) -> str:
        """NotificationSent, NotificationFailed, from the notifier."""
        return f"{self.namespace}.otp.notifications"

    @property
    def attempts(self) -> str:
        """CourierAssigned and HandoverAttempted, from courier gateways."""
        return f"{self.namespace}.handover.attempts"

    @property
    def decisions(self) -> str:
        """HandoverDecided, from the verifier, read by courier gateways."""
        return f"{self.namespace}.handover.decisions"

    @property
    def couriers(self) -> str:
        """CourierFlagged, from the verifier; CourierCleared, from operations."""
        return f"{self.namespace}.ops.couriers"

    @property
    def days(self) -> str:
        """DayClosed, from the scheduler."""
        return f"{self.namespace}.days.closed"

    def main_topics(self) -> list[str]:
        return [
            self.dispatched,
            self.issuance,
            self.expiries,
            self.notifications,
            self.attempts,
            self.decisions,
            self.days,
            self.couriers,
        ]

    def event_types(self, topic: str) -> frozenset[str] | None:
        """Which event types a main topic may carry; None for a topic of no known kind."""
        kinds = {
            self.dispatched: {"ShipmentDispatched"},
            self.issuance: {"OtpIssued", "OtpNotRequired", "RedeliveryQueued", "ShipmentReturned"},
            self.expiries: {"CodeExpired"},
            self.notifications: {"NotificationSent", "NotificationFailed"},
            self.attempts: {"CourierAssigned", "HandoverAttempted"},
            self.decisions: {"HandoverDecided"},
            self.days: {"DayClosed"},
            self.couriers: {"CourierFlagged", "CourierCleared"},
        }
        found = kinds.get(topic)
        return frozenset(found) if found is not None else None

    @staticmethod
    def dead_letters(topic: str) -> str:
        return f"{topic}.dlq"

    def all_topics(self) -> list[str]:
        main = self.main_topics()
        return main + [self.dead_letters(topic) for topic in main]
