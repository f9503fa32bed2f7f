from datetime import UTC, date, datetime
from decimal import Decimal

from services.issuer.domain import (
    EligibilityPolicy,
    IssuePolicy,
    Redeliver,
    ReturnToSender,
    decide_after_expiry,
    plan_first_code,
    requires_code,
)

POLICY = EligibilityPolicy(thresholds={"BRL": Decimal("100.00"), "EUR": Decimal("250")},
                           carriers=frozenset({"own-fleet"}))
ZONE = "America/Sao_Paulo"


def test_a_code_from_the_threshold_on_for_the_own_fleet_only():
    assert requires_code(POLICY, Decimal("100.00"), "BRL", "own-fleet")
    assert not requires_code(POLICY, Decimal("99.99"), "BRL", "own-fleet")
    assert not requires_code(POLICY, Decimal("5000"), "BRL", "partner-post")
    assert requires_code(POLICY, Decimal("250"), "EUR", "own-fleet")


def test_a_currency_without_threshold_needs_a_code():
    assert requires_code(POLICY, Decimal("1"), "CHF", "own-fleet")


def test_every_carrier_when_no_carrier_policy():
    assert requires_code(EligibilityPolicy({"BRL": Decimal(10)}, None), Decimal(10), "BRL", "anyone")


def test_the_first_code_lasts_until_the_end_of_the_planned_day():
    now = datetime(2018, 1, 3, 14, tzinfo=UTC)
    plan = plan_first_code("s1", date(2018, 1, 5), ZONE, now, now)
    assert plan.day_number == 1 and plan.code_id == "s1.d1"
    assert plan.valid_from == now
    assert plan.valid_until == datetime(2018, 1, 6, 2, tzinfo=UTC)  # midnight -02:00 (summer time)


def test_a_dispatch_after_its_planned_day_is_planned_from_the_day_it_left():
    dispatched = datetime(2018, 1, 9, 14, tzinfo=UTC)
    processed_late = datetime(2018, 1, 12, 9, tzinfo=UTC)
    plan = plan_first_code("s1", date(2018, 1, 5), ZONE, dispatched, processed_late)
    assert plan.delivery_date == date(2018, 1, 9) and plan.valid_from == processed_late


def test_an_expired_code_leads_to_a_new_code_on_the_next_delivery_day():
    now = datetime(2018, 1, 6, 3, tzinfo=UTC)  # just after the end of Friday 5 January
    outcome = decide_after_expiry("s1", 1, date(2018, 1, 5), ZONE, now, IssuePolicy())
    assert isinstance(outcome, Redeliver)
    assert outcome.plan.delivery_date == date(2018, 1, 6)  # Saturday
    assert outcome.plan.code_id == "s1.d2"
    sunday_skipped = decide_after_expiry("s1", 2, date(2018, 1, 6), ZONE, now, IssuePolicy())
    assert isinstance(sunday_skipped, Redeliver) and sunday_skipped.plan.delivery_date == date(2018, 1, 8)


def test_after_the_last_allowed_day_the_parcel_goes_back():
    now = datetime(2018, 1, 9, 3, tzinfo=UTC)
    outcome = decide_after_expiry("s1", 4, date(2018, 1, 8), ZONE, now, IssuePolicy(max_delivery_days=4))
    assert outcome == ReturnToSender(days_attempted=4)
