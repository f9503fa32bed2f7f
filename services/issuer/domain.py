"""The issuer's rules: who needs a code, for which day, and what happens when a day is missed.

Pure: time and the code itself are arguments, the results are plain values.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from shared.calendar import end_of_local_day, local_date, next_delivery_date

__all__ = [
    "CodePlan",
    "EligibilityPolicy",
    "IssuePolicy",
    "Redeliver",
    "ReturnToSender",
    "code_id_for",
    "decide_after_expiry",
    "plan_first_code",
    "requires_code",
]


@dataclass(frozen=True)
class EligibilityPolicy:
    """Thresholds per currency and the carriers whose parcels need a code (None = every carrier).

    A currency with no configured threshold needs a code: a gap in configuration must
    not let a valuable parcel through without one.
    """

    thresholds: Mapping[str, Decimal]
    carriers: frozenset[str] | None


@dataclass(frozen=True)
class IssuePolicy:
    max_attempts: int = 5
    max_delivery_days: int = 4
    delivery_weekdays: frozenset[int] = frozenset(range(6))  # Monday to Saturday


@dataclass(frozen=True)
class CodePlan:
    code_id: str
    day_number: int
    delivery_date: date
    valid_from: datetime
    valid_until: datetime


@dataclass(frozen=True)
class Redeliver:
    plan: CodePlan


@dataclass(frozen=True)
class ReturnToSender:
    days_attempted: int


def requires_code(policy: EligibilityPolicy, value: Decimal, currency: str, carrier: str) -> bool:
    if policy.carriers is not None and carrier not in policy.carriers:
        return False
    threshold = policy.thresholds.get(currency)
    return threshold is None or value >= threshold


def code_id_for(shipment_id: str, day_number: int) -> str:
    """The natural key of a code: one per shipment and delivery day."""
    return f"{shipment_id}.d{day_number}"


def plan_first_code(
    shipment_id: str, requested_date: date, zone: str, dispatched_at: datetime, now: datetime
) -> CodePlan:
    """The first delivery day is upstream's, but never before the day the parcel left.

    It depends on the event only, not on when we happen to process it, so a replay
    after an outage plans the same day; a code whose day has passed by then expires at
    once and the parcel moves to the next delivery day.
    """
    delivery_date = max(requested_date, local_date(dispatched_at, zone))
    return CodePlan(
        code_id=code_id_for(shipment_id, 1),
        day_number=1,
        delivery_date=delivery_date,
        valid_from=now,
        valid_until=end_of_local_day(delivery_date, zone),
    )


def decide_after_expiry(
    shipment_id: str,
    expired_day_number: int,
    expired_date: date,
    zone: str,
    now: datetime,
    policy: IssuePolicy,
) -> Redeliver | ReturnToSender:
    if expired_day_number >= policy.max_delivery_days:
        return ReturnToSender(days_attempted=expired_day_number)
    day_number = expired_day_number + 1
    delivery_date = next_delivery_date(expired_date, local_date(now, zone), policy.delivery_weekdays)
    return Redeliver(
        CodePlan(
            code_id=code_id_for(shipment_id, day_number),
            day_number=day_number,
            delivery_date=delivery_date,
            valid_from=now,
            valid_until=end_of_local_day(delivery_date, zone),
        )
    )


def parse_weekdays(names: Collection[str]) -> frozenset[int]:
    order = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return frozenset(order.index(name[:3].lower()) for name in names)
