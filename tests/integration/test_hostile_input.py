"""Hostile messages on the real topics: each lands in the dead-letter topic with a reason,
no consumer stops, and the valid event sent after them is still processed."""

from __future__ import annotations

import pytest

from shared.errors import BadEvent
from shared.events import OtpIssued, decode
from tests.hostile import hostile_messages, valid_attempt, valid_dispatch
from tests.integration.harness import Probe, zone_with_local_hour

pytestmark = pytest.mark.integration

PER_TOPIC = 400


def _decodes(raw: bytes, allowed: frozenset[str] | None) -> bool:
    try:
        decode(raw, allowed)
    except BadEvent:
        return False
    return True


async def test_hostile_messages_are_dead_lettered_and_the_consumers_go_on(probe: Probe):
    fuzz_shipment = probe.new_shipment_id()
    expected: dict[str, set[bytes]] = {probe.topics.dispatched: set(), probe.topics.attempts: set()}
    sources = {probe.topics.dispatched: valid_dispatch(fuzz_shipment), probe.topics.attempts: valid_attempt(
        fuzz_shipment)}
    for number, (topic, template) in enumerate(sources.items()):
        for index, (_, raw) in enumerate(hostile_messages(seed=7 + number, count=PER_TOPIC, templates=[template])):
            key = f"fuzz-{probe.run_tag}-{number}-{index}"
            # A dispatch that still decodes is a real (if odd) dispatch; an attempt that still
            # decodes carries a sealed code that does not open: the verifier dead-letters it.
            if topic == probe.topics.attempts or not _decodes(raw, probe.topics.event_types(topic)):
                expected[topic].add(key.encode())
            await probe.publish_raw(topic, raw, key)

    after = probe.new_shipment_id()
    await probe.dispatch(after, zone=zone_with_local_hour(probe.clock.now(), 6, 14))
    await probe.wait_for(lambda o: isinstance(o.event, OtpIssued) and o.event.shipment_id == after,
                         "the valid dispatch after the hostile ones", 60)

    def dead(topic: str) -> dict[bytes, dict[str, str]]:
        return {key: headers for t, headers, key in probe.tap.dead_letters
                if t == probe.topics.dead_letters(topic) and key in expected[topic]}
    for topic in expected:
        await probe.wait_until(lambda t=topic: len(dead(t)) == len(expected[t]), f"dead letters of {topic}", 60)
        for headers in dead(topic).values():
            assert headers["dlq-reason"] and headers["dlq-source-topic"] == topic
    print(f"\nfed {2 * PER_TOPIC} hostile messages; dead-lettered "
          f"{ {t: len(v) for t, v in expected.items()} }")
