"""Attempts are bound to the assigned courier; guessing across parcels raises a flag."""

from __future__ import annotations

import asyncio

import pytest

from shared.events import CourierFlagged, OtpIssued, RejectionReason
from tests.integration.harness import Probe, zone_with_local_hour

pytestmark = pytest.mark.integration


async def _parcel(probe: Probe) -> tuple[str, str]:
    shipment = probe.new_shipment_id()
    await probe.dispatch(shipment, zone=zone_with_local_hour(probe.clock.now(), 6, 14))
    issued = await probe.wait_for(lambda o: isinstance(o.event, OtpIssued) and o.event.shipment_id == shipment,
                                  "OtpIssued")
    return shipment, (await probe.email_for(issued.code_id)).code


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


async def test_a_courier_not_assigned_to_the_parcel_is_refused_without_using_a_try(probe: Probe):
    shipment, code = await _parcel(probe)
    await probe.assign(shipment, courier_id="courier-a", terminal_id="t-a")
    other = await probe.attempt(shipment, code, courier_id="courier-b", terminal_id="t-b", assign=False)
    assert other.reason is RejectionReason.NOT_ASSIGNED and other.tries_left == 5
    wrong_terminal = await probe.attempt(shipment, code, courier_id="courier-a", terminal_id="t-x", assign=False)
    assert wrong_terminal.reason is RejectionReason.NOT_ASSIGNED
    accepted = await probe.attempt(shipment, code, courier_id="courier-a", terminal_id="t-a", assign=False)
    assert accepted.outcome == "accepted"


async def test_a_courier_guessing_across_many_parcels_is_flagged(probe: Probe):
    guesser = f"courier-guess-{probe.run_tag}"
    for _ in range(5):
        shipment, code = await _parcel(probe)
        for _ in range(2):
            wrong = await probe.attempt(shipment, _wrong(code), courier_id=guesser, terminal_id=f"t-{guesser}")
            assert wrong.reason is RejectionReason.WRONG_CODE
    flag = await probe.wait_for(lambda o: isinstance(o.event, CourierFlagged) and o.event.subject_id == guesser,
                                "CourierFlagged for the guesser")
    assert flag.subject == "courier" and flag.failed_shipments >= 4 and flag.policy == "alert"


async def test_honest_couriers_with_a_few_typos_are_not_flagged(probe: Probe):
    honest = f"courier-honest-{probe.run_tag}"
    for _ in range(6):
        shipment, code = await _parcel(probe)
        assert (await probe.attempt(shipment, _wrong(code), courier_id=honest)).reason is RejectionReason.WRONG_CODE
        assert (await probe.attempt(shipment, code, courier_id=honest)).outcome == "accepted"
    shipment, code = await _parcel(probe)
    await probe.attempt(shipment, _wrong(code), courier_id=honest)  # one customer who forgot the code
    await probe.attempt(shipment, _wrong(code), courier_id=honest)
    await asyncio.sleep(1.0)  # a flag would travel in the same outbox batch as the last decision
    assert not [o for o in probe.tap.events if isinstance(o.event, CourierFlagged) and o.event.subject_id == honest]


async def test_an_attempt_for_a_day_whose_code_has_not_arrived_waits_then_is_decided(probe: Probe):
    from datetime import timedelta

    from shared.events import CourierAssigned, Envelope, encode

    shipment, code = await _parcel(probe)
    issued = max(probe.events_for(shipment, OtpIssued), key=lambda e: e.day_number)
    # The route already says tomorrow, but tomorrow's code does not exist (yet).
    tomorrow = CourierAssigned(shipment_id=shipment, delivery_date=issued.delivery_date + timedelta(days=1),
                               courier_id="courier-7", terminal_id="t-1",
                               out_for_delivery_at=probe.clock.now() - timedelta(minutes=5))
    await probe.publish_raw(probe.topics.attempts, encode(Envelope.wrap(tomorrow, occurred_at=probe.clock.now())),
                            shipment)
    started = asyncio.get_running_loop().time()
    decision = await probe.attempt(shipment, code, assign=False)
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 2.5, f"decided after {waited:.1f}s: it should have waited for the code"
    assert decision.reason is RejectionReason.NOT_ASSIGNED and decision.tries_left == 5
