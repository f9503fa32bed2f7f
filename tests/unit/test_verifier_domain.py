from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.verifier.domain import (
    CodeState,
    CodeStatus,
    ShipmentState,
    decide_attempt,
    effective_attempt_time,
)
from shared.events import RejectionReason

ISSUED = datetime(2018, 1, 5, 9, tzinfo=UTC)
UNTIL = datetime(2018, 1, 6, 2, tzinfo=UTC)
NOON = datetime(2018, 1, 5, 15, tzinfo=UTC)
CODE = CodeState("s1.d1", 1, ISSUED, UNTIL, CodeStatus.ACTIVE, 0, 5, True)
SHIPMENT = ShipmentState(code_required=True, returned=False, current=CODE)


def test_the_right_code_is_accepted_and_consumed():
    decision = decide_attempt(SHIPMENT, "current", "customer", NOON)
    assert decision.accepted and decision.reason is None
    assert decision.code is not None and decision.code.status is CodeStatus.CONSUMED


def test_a_consumed_code_rejects_every_later_try():
    consumed = replace(SHIPMENT, current=replace(CODE, status=CodeStatus.CONSUMED))
    assert decide_attempt(consumed, "current", "customer", NOON).reason is RejectionReason.ALREADY_DELIVERED


def test_five_wrong_codes_lock_the_code_for_the_day():
    shipment = SHIPMENT
    for left in (4, 3, 2, 1, 0):
        decision = decide_attempt(shipment, "none", "customer", NOON)
        assert decision.reason is RejectionReason.WRONG_CODE and decision.tries_left == left
        assert decision.code is not None
        shipment = replace(shipment, current=decision.code)
    assert shipment.current is not None and shipment.current.status is CodeStatus.LOCKED
    after = decide_attempt(shipment, "current", "customer", NOON)
    assert not after.accepted and after.reason is RejectionReason.LOCKED


def test_the_end_of_validity_rejects_even_before_the_day_is_closed():
    decision = decide_attempt(SHIPMENT, "current", "customer", UNTIL)
    assert decision.reason is RejectionReason.EXPIRED and decision.code is None


def test_an_older_code_is_superseded_and_uses_no_try():
    decision = decide_attempt(SHIPMENT, "older", "customer", NOON)
    assert decision.reason is RejectionReason.SUPERSEDED and decision.tries_left == 5 and decision.code is None


def test_a_neighbour_needs_the_customers_consent():
    refused = replace(SHIPMENT, current=replace(CODE, neighbour_allowed=False))
    assert decide_attempt(refused, "current", "neighbour", NOON).reason is RejectionReason.NEIGHBOUR_NOT_ALLOWED
    assert decide_attempt(SHIPMENT, "current", "neighbour", NOON).accepted


def test_unknown_not_required_and_returned_shipments():
    assert decide_attempt(None, "none", "customer", NOON).reason is RejectionReason.UNKNOWN_SHIPMENT
    not_required = ShipmentState(code_required=False, returned=False, current=None)
    assert decide_attempt(not_required, "none", "customer", NOON).reason is RejectionReason.NOT_REQUIRED
    returned = replace(SHIPMENT, returned=True, current=replace(CODE, status=CodeStatus.EXPIRED))
    assert decide_attempt(returned, "current", "customer", NOON).reason is RejectionReason.RETURNED


def test_a_back_dated_attempt_counts_as_made_at_most_the_lag_ago():
    now = UNTIL + timedelta(hours=2)
    assert effective_attempt_time(UNTIL - timedelta(hours=5), now, timedelta(minutes=15)) == now - timedelta(
        minutes=15)
    assert effective_attempt_time(now + timedelta(hours=1), now, timedelta(minutes=15)) == now
