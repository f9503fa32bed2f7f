"""The scheduler's rule: a (local date, zone) closes at the end of that local day."""

from __future__ import annotations

from datetime import date, datetime

from shared.calendar import end_of_local_day

__all__ = ["closes_at", "is_due"]


def closes_at(local_date: date, zone: str) -> datetime:
    return end_of_local_day(local_date, zone)


def is_due(local_date: date, zone: str, now: datetime) -> bool:
    return now >= closes_at(local_date, zone)
