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


def test_a_code_the_terminal_itself_stamps_after_its_end_is_expired_though_our_clock_lags():
    just_before = UNTIL - timedelta(seconds=5)  # our clock has not reached the end yet
    late_stamp = UNTIL + timedelta(seconds=30)
    at = effective_attempt_time(late_stamp, just_before, timedelta(minutes=15))
    assert at == just_before
    decision = decide_attempt(SHIPMENT, "current", "customer", at, stamped_at=late_stamp)
    assert decision.reason is RejectionReason.EXPIRED and not decision.accepted
    assert decide_attempt(SHIPMENT, "current", "customer", at, stamped_at=just_before - timedelta(hours=1)).accepted


def test_only_the_assigned_courier_and_terminal_once_out_for_delivery():
    from services.verifier.domain import Assignment, check_assignment

    assignment = Assignment("c-1", "t-1", NOON - timedelta(hours=3))
    assert check_assignment(assignment, "c-1", "t-1", NOON) is None
    assert check_assignment(assignment, "c-2", "t-1", NOON) is RejectionReason.NOT_ASSIGNED
    assert check_assignment(assignment, "c-1", "t-9", NOON) is RejectionReason.NOT_ASSIGNED
    assert check_assignment(None, "c-1", "t-1", NOON) is RejectionReason.NOT_ASSIGNED
    assert check_assignment(assignment, "c-1", "t-1", NOON - timedelta(hours=4)) is (
        RejectionReason.NOT_OUT_FOR_DELIVERY)


def test_a_courier_problem_is_answered_first_and_uses_no_try():
    decision = decide_attempt(SHIPMENT, "none", "customer", NOON, RejectionReason.NOT_ASSIGNED)
    assert decision.reason is RejectionReason.NOT_ASSIGNED and decision.tries_left == 5 and decision.code is None
    blocked = decide_attempt(SHIPMENT, "current", "customer", NOON, RejectionReason.COURIER_BLOCKED)
    assert not blocked.accepted


def test_guessing_across_parcels_is_flagged_and_typos_followed_by_the_code_are_not():
    from services.verifier.domain import FlagPolicy, WindowAttempt, assess_failures

    policy = FlagPolicy(min_failed_shipments=4, min_wrong_tries=6)
    guesser = [WindowAttempt(f"s{n}", False, "wrong_code") for n in range(5) for _ in range(2)]
    assert assess_failures(guesser, policy).flagged
    honest = [a for n in range(20) for a in (WindowAttempt(f"s{n}", False, "wrong_code"),
                                              WindowAttempt(f"s{n}", True, None))]
    honest += [WindowAttempt("forgot-1", False, "wrong_code"), WindowAttempt("forgot-2", False, "wrong_code")]
    summary = assess_failures(honest, policy)
    assert not summary.flagged and summary.failed_shipments == 2
    not_guessing = [WindowAttempt(f"s{n}", False, "not_assigned") for n in range(10)]
    assert not assess_failures(not_guessing, policy).flagged
