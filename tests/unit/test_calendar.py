from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.calendar import end_of_local_day, local_date, next_delivery_date, start_of_local_day

ZONES = ["America/Sao_Paulo", "Europe/Berlin", "America/Manaus", "Pacific/Apia", "America/Havana",
         "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "America/Santiago", "Asia/Tehran"]


def test_a_plain_day_ends_at_local_midnight():
    assert end_of_local_day(date(2018, 1, 10), "America/Sao_Paulo") == datetime(2018, 1, 11, 2, tzinfo=UTC)


def test_brazilian_spring_forward_skips_midnight_so_the_next_day_begins_at_one():
    # 2017-10-15 00:00 did not exist in Sao Paulo: clocks went from 23:59:59 -03 to 01:00 -02.
    end = end_of_local_day(date(2017, 10, 14), "America/Sao_Paulo")
    assert end == datetime(2017, 10, 15, 3, tzinfo=UTC)
    assert local_date(end - timedelta(seconds=1), "America/Sao_Paulo") == date(2017, 10, 14)


def test_brazilian_fall_back_makes_a_25_hour_day():
    start = start_of_local_day(date(2018, 2, 17), "America/Sao_Paulo")
    end = end_of_local_day(date(2018, 2, 17), "America/Sao_Paulo")
    assert end - start == timedelta(hours=25)


def test_berlin_short_and_long_days():
    assert end_of_local_day(date(2026, 3, 29), "Europe/Berlin") - start_of_local_day(
        date(2026, 3, 29), "Europe/Berlin") == timedelta(hours=23)
    assert end_of_local_day(date(2026, 10, 25), "Europe/Berlin") - start_of_local_day(
        date(2026, 10, 25), "Europe/Berlin") == timedelta(hours=25)


def test_a_skipped_date_ends_when_the_next_existing_date_begins():
    # Samoa skipped 2011-12-30 entirely.
    end = end_of_local_day(date(2011, 12, 29), "Pacific/Apia")
    assert local_date(end, "Pacific/Apia") == date(2011, 12, 31)
    assert local_date(end - timedelta(seconds=1), "Pacific/Apia") == date(2011, 12, 29)


@settings(max_examples=400, deadline=None)
@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2037, 12, 31)), st.sampled_from(ZONES))
def test_the_end_of_a_day_is_the_first_instant_of_a_later_local_date(day, zone):
    end = end_of_local_day(day, zone)
    assert local_date(end, zone) > day
    assert local_date(end - timedelta(seconds=1), zone) <= day


def test_next_delivery_day_skips_sunday_and_the_past():
    saturday = date(2026, 12, 5)
    monday_to_saturday = frozenset(range(6))
    assert next_delivery_date(saturday, saturday, monday_to_saturday) == date(2026, 12, 7)
    assert next_delivery_date(date(2026, 12, 1), date(2026, 12, 4), monday_to_saturday) == date(2026, 12, 4)
    with pytest.raises(ValueError):
        next_delivery_date(saturday, saturday, frozenset())
