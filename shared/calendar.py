"""Local delivery days: where they end, and which day comes next. Pure functions.

The end of a local day is the first instant whose local date is later, which is not
always local midnight: where a daylight-saving jump skips midnight (Brazil until 2019
moved clocks at 00:00) the next day begins when the clock lands in it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

__all__ = ["end_of_local_day", "local_date", "next_delivery_date", "start_of_local_day"]


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(instant: datetime, zone: str) -> date:
    return instant.astimezone(_zone(zone)).date()


@lru_cache(maxsize=65536)
def start_of_local_day(day: date, zone: str) -> datetime:
    """The first instant (UTC) whose local date in `zone` is `day` or later."""
    tz = _zone(zone)
    candidates = [
        datetime.combine(day, time(), tzinfo=tz).replace(fold=fold).astimezone(UTC) for fold in (0, 1)
    ]
    start = min(c for c in candidates if local_date(c, zone) >= day)
    if local_date(start - timedelta(seconds=1), zone) < day:
        return start
    # The jump that skips midnight began before it: search back for the transition.
    low, high = start - timedelta(hours=26), start
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if local_date(middle, zone) >= day:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def end_of_local_day(day: date, zone: str) -> datetime:
    """The instant (UTC) at which a code for `day` stops being valid."""
    return start_of_local_day(day + timedelta(days=1), zone)


def next_delivery_date(after: date, not_before: date, delivery_weekdays: Collection[int]) -> date:
    """The first delivery weekday (Monday = 0) later than `after` and not before `not_before`."""
    if not delivery_weekdays:
        raise ValueError("at least one delivery weekday is needed")
    candidate = max(after + timedelta(days=1), not_before)
    while candidate.weekday() not in delivery_weekdays:
        candidate += timedelta(days=1)
    return candidate
