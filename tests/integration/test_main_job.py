"""The main job on the real broker, database and SMTP server, through the running services."""

from __future__ import annotations

import json
import signal
import uuid
from datetime import timedelta

import pytest

from shared.events import (
    CodeExpired,
    DayClosed,
    Envelope,
    NotificationSent,
    OtpIssued,
    OtpNotRequired,
    RedeliveryQueued,
    RejectionReason,
    encode,
)
from stack.services import ServiceProcesses
from tests.integration.harness import Probe, zone_with_local_hour

pytestmark = pytest.mark.integration


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10 ** len(code):0{len(code)}d}"


async def _issued(probe: Probe, shipment_id: str, day: int = 1) -> OtpIssued:
    return await probe.wait_for(
        lambda o: isinstance(o.event, OtpIssued) and o.event.shipment_id == shipment_id
        and o.event.day_number == day, f"OtpIssued day {day} for {shipment_id}")


async def test_dispatch_email_and_the_right_code_at_the_door(probe: Probe):
    shipment = probe.new_shipment_id()
    zone = zone_with_local_hour(probe.clock.now(), 6, 14)
    await probe.dispatch(shipment, zone=zone, locale="de-DE")
    issued = await _issued(probe, shipment)
    raw = json.dumps(issued.model_dump(mode="json"))
    mail = await probe.email_for(issued.code_id)
    assert mail.code not in raw, "the code must not travel in the clear"
    assert mail.language == "de" and "customers.example" in mail.recipient
    await probe.wait_for(lambda o: isinstance(o.event, NotificationSent) and o.event.code_id == issued.code_id,
                         "NotificationSent")

    accepted = await probe.attempt(shipment, mail.code)
    assert accepted.outcome == "accepted" and accepted.code_id == issued.code_id
    again = await probe.attempt(shipment, mail.code)
    assert again.outcome == "rejected" and again.reason is RejectionReason.ALREADY_DELIVERED


async def test_below_the_threshold_or_another_carrier_gets_no_code(probe: Probe):
    cheap, partner = probe.new_shipment_id(), probe.new_shipment_id()
    zone = zone_with_local_hour(probe.clock.now(), 6, 14)
    await probe.dispatch(cheap, zone=zone, value="99.99")
    await probe.dispatch(partner, zone=zone, value="5000.00", carrier="partner-post")
    for shipment in (cheap, partner):
        await probe.wait_for(lambda o, s=shipment: isinstance(o.event, OtpNotRequired) and o.event.shipment_id == s,
                             "OtpNotRequired")
        decision = await probe.attempt(shipment, "123456")
        assert decision.reason is RejectionReason.NOT_REQUIRED
        assert not probe.events_for(shipment, OtpIssued)


async def test_a_neighbour_told_the_code_receives_the_parcel_unless_the_customer_opted_out(probe: Probe):
    zone = zone_with_local_hour(probe.clock.now(), 6, 14)
    allowed, refused = probe.new_shipment_id(), probe.new_shipment_id()
    await probe.dispatch(allowed, zone=zone)
    await probe.dispatch(refused, zone=zone, neighbour_allowed=False)
    code = (await probe.email_for((await _issued(probe, allowed)).code_id)).code
    decision = await probe.attempt(allowed, code, receiver="neighbour")
    assert decision.outcome == "accepted" and decision.receiver.kind == "neighbour"

    code = (await probe.email_for((await _issued(probe, refused)).code_id)).code
    decision = await probe.attempt(refused, code, receiver="neighbour")
    assert decision.reason is RejectionReason.NEIGHBOUR_NOT_ALLOWED and decision.tries_left == 5
    assert (await probe.attempt(refused, code)).outcome == "accepted"


async def test_a_wrong_code_then_the_right_one(probe: Probe):
    shipment = probe.new_shipment_id()
    await probe.dispatch(shipment, zone=zone_with_local_hour(probe.clock.now(), 6, 14))
    code = (await probe.email_for((await _issued(probe, shipment)).code_id)).code
    wrong = await probe.attempt(shipment, _wrong(code))
    assert wrong.reason is RejectionReason.WRONG_CODE and wrong.tries_left == 4
    assert (await probe.attempt(shipment, code)).outcome == "accepted"


async def test_the_code_locks_after_five_wrong_tries(probe: Probe):
    shipment = probe.new_shipment_id()
    await probe.dispatch(shipment, zone=zone_with_local_hour(probe.clock.now(), 6, 14))
    code = (await probe.email_for((await _issued(probe, shipment)).code_id)).code
    left = [(await probe.attempt(shipment, _wrong(code))).tries_left for _ in range(5)]
    assert left == [4, 3, 2, 1, 0]
    locked = await probe.attempt(shipment, code)
    assert locked.outcome == "rejected" and locked.reason is RejectionReason.LOCKED


async def test_the_same_attempt_id_gets_the_same_answer_and_counts_once(probe: Probe):
    shipment = probe.new_shipment_id()
    await probe.dispatch(shipment, zone=zone_with_local_hour(probe.clock.now(), 6, 14))
    code = (await probe.email_for((await _issued(probe, shipment)).code_id)).code
    attempt_id = f"att-{uuid.uuid4().hex}"
    first = await probe.attempt(shipment, _wrong(code), attempt_id=attempt_id)
    second = await probe.attempt(shipment, _wrong(code), attempt_id=attempt_id)
    assert first.model_dump() == second.model_dump()
    assert (await probe.attempt(shipment, _wrong(code))).tries_left == 3  # the repeat did not count


async def test_an_unused_code_expires_and_the_next_day_brings_a_new_one(probe: Probe):
    # A zone where the local day ends within about an hour of simulated time (~6 s here).
    zone = zone_with_local_hour(probe.clock.now(), 22.0, 23.95)
    shipment = probe.new_shipment_id()
    await probe.dispatch(shipment, zone=zone)
    first = await _issued(probe, shipment)
    old_code = (await probe.email_for(first.code_id)).code

    expired = await probe.wait_for(
        lambda o: isinstance(o.event, CodeExpired) and o.event.code_id == first.code_id, "CodeExpired", 60)
    assert expired.day_number == 1 and not expired.was_locked
    queued = await probe.wait_for(
        lambda o: isinstance(o.event, RedeliveryQueued) and o.event.shipment_id == shipment, "RedeliveryQueued")
    second = await _issued(probe, shipment, day=2)
    assert queued.delivery_date > first.delivery_date and second.delivery_date == queued.delivery_date
    new_mail = await probe.email_for(second.code_id)
    assert new_mail.code != old_code or second.code_id != first.code_id

    stale = await probe.attempt(shipment, old_code)
    assert stale.reason in (RejectionReason.SUPERSEDED, RejectionReason.WRONG_CODE)
    if new_mail.code != old_code:
        assert stale.reason is RejectionReason.SUPERSEDED and stale.tries_left == 5
    assert (await probe.attempt(shipment, new_mail.code)).outcome == "accepted"


async def test_a_try_after_the_end_of_validity_fails_closed_and_the_scheduler_catches_up(
        probe: Probe, services: ServiceProcesses):
    zone = zone_with_local_hour(probe.clock.now(), 22.0, 23.95)
    shipment = probe.new_shipment_id()
    services.kill("scheduler-1", signal.SIGTERM)  # no DayClosed can come while it is down
    await probe.dispatch(shipment, zone=zone)
    issued = await _issued(probe, shipment)
    code = (await probe.email_for(issued.code_id)).code
    await probe.clock.sleep_until(issued.valid_until + timedelta(minutes=1))
    late = await probe.attempt(shipment, code)
    assert late.reason is RejectionReason.EXPIRED
    assert not probe.events_for(shipment, CodeExpired)

    services.start_instance("scheduler", 1)
    expired = await probe.wait_for(
        lambda o: isinstance(o.event, CodeExpired) and o.event.code_id == issued.code_id, "catch-up", 60)
    assert expired.delivery_date == issued.delivery_date
    closed = [o.event for o in probe.tap.events if isinstance(o.event, DayClosed)
              and o.event.zone == zone and o.event.local_date == issued.delivery_date]
    assert len(closed) == 1


async def test_a_malformed_dispatch_is_dead_lettered_and_the_next_one_still_processed(probe: Probe):
    bad = probe.new_shipment_id()
    good = probe.new_shipment_id()
    zone = zone_with_local_hour(probe.clock.now(), 6, 14)
    document = json.loads(encode(Envelope.wrap(
        (await _template(probe, bad, zone)), occurred_at=probe.clock.now())))
    document["payload"]["goods_value"] = "lots"
    await probe.publish_raw(probe.topics.dispatched, json.dumps(document).encode(), bad)
    await probe.publish_raw(probe.topics.dispatched, b"\xff not even utf-8", bad)
    await probe.dispatch(good, zone=zone)
    await _issued(probe, good)

    def reasons() -> list[str]:
        return [headers.get("dlq-reason", "") for topic, headers, key in probe.tap.dead_letters
                if topic == probe.topics.dead_letters(probe.topics.dispatched) and key == bad.encode()]
    await probe.wait_until(lambda: {"invalid_payload", "not_utf8"} <= set(reasons()), "both dead letters")
    detail = next(h for _, h, key in probe.tap.dead_letters
                  if key == bad.encode() and h.get("dlq-reason") == "invalid_payload")
    assert "goods_value" in detail["dlq-detail"] and detail["dlq-service"] == "issuer"
    assert not probe.events_for(bad, OtpIssued)


async def _template(probe: Probe, shipment_id: str, zone: str):
    from datetime import date
    from decimal import Decimal

    from shared.events import Recipient, ShipmentDispatched

    return ShipmentDispatched(
        shipment_id=shipment_id, order_reference="BAD", dispatched_at=probe.clock.now(),
        delivery_date=date.today(), delivery_zone=zone, goods_value=Decimal("500.00"), currency="BRL",
        carrier="own-fleet", recipient=Recipient(name="X", email="x@customers.example"))
