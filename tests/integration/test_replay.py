"""The dead-letter replay command (`python -m shared.kafka.replay`) against a real issuer.

A ShipmentDispatched in a schema version that does not exist yet is dead-lettered by the
issuer as `unsupported_version`. Replaying it puts the original bytes back on the source
topic with a `dlq-replayed-from` header; the issuer, still on version 1, dead-letters it
again, and that new dead letter points at the replayed copy. The replay group's offset
is committed after the broker's acknowledgement, so a second run republishes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from shared.clock import ScaledClock
from shared.events import Envelope, Recipient, ShipmentDispatched, encode
from stack.environment import PROJECT_ROOT
from tests.integration.harness import zone_with_local_hour
from tests.integration.isolated import IsolatedSystem, RawRecord, isolated_system

pytestmark = pytest.mark.integration


async def _replay(system: IsolatedSystem, *args: str) -> dict[str, int]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shared.kafka.replay", "--namespace", system.namespace,
        "--topic", "shipments.dispatched", *args,
        cwd=PROJECT_ROOT, env={**os.environ, **system.env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    text = output.decode()
    assert process.returncode == 0, text
    print(f"\n$ replay {' '.join(args)}\n{text}", end="")
    return {name.strip(): int(count) for name, count in re.findall(r"^ +([a-z_ ()./0-9-]+?):? +(\d+)$", text, re.M)}


def _version_2_dispatch(system: IsolatedSystem, shipment: str) -> bytes:
    now = system.probe.clock.now()
    zone = zone_with_local_hour(now, 6, 14)
    event = ShipmentDispatched(
        shipment_id=shipment, order_reference=shipment[-12:].upper(), dispatched_at=now,
        delivery_date=now.astimezone(ZoneInfo(zone)).date(), delivery_zone=zone, goods_value=Decimal("250.00"),
        currency="BRL", carrier="own-fleet",
        recipient=Recipient(name="Erika Muster", email=f"{shipment}@customers.example", locale="de-DE"),
        neighbour_allowed=True)
    document = json.loads(encode(Envelope.wrap(event, occurred_at=now)))
    document["schema_version"] = ShipmentDispatched.schema_version + 1  # valid JSON, a version nobody knows yet
    return json.dumps(document).encode()


async def test_a_replayed_dead_letter_goes_back_once_and_is_dead_lettered_again(
        stack_env: dict[str, str], clock: ScaledClock):
    async with isolated_system(stack_env, clock, prefix="rp", services=("issuer",)) as system:
        dispatched, dead_letters = system.topics.dispatched, system.topics.dead_letters(system.topics.dispatched)
        shipment = system.probe.new_shipment_id()
        key = shipment.encode()
        original = _version_2_dispatch(system, shipment)
        await system.probe.publish_raw(dispatched, original, shipment)

        def dead() -> list[RawRecord]:
            return system.raw.where(dead_letters, lambda r: r.key == key)
        await system.probe.wait_until(lambda: len(dead()) == 1, "the dead letter")
        first = dead()[0]
        assert first.value == original
        assert first.headers["dlq-reason"] == "unsupported_version"
        assert first.headers["dlq-source-topic"] == dispatched and first.headers["dlq-service"] == "issuer"

        # The issuer is down while the replay runs, so the DLQ holds only the first dead letter.
        system.processes.kill("issuer-1", signal.SIGTERM)
        assert system.processes.processes["issuer-1"].returncode == 0

        dry = await _replay(system, "--dry-run")
        assert dry["read"] == 1 and dry["would replay"] == 1
        run = await _replay(system, "--reason", "unsupported_version")
        assert run["read"] == 1 and run["replayed"] == 1 and run[f"to {dispatched}"] == 1, "the dry run committed"
        again = await _replay(system, "--reason", "unsupported_version")
        assert again["read"] == 0 and again["replayed"] == 0, "the group's offset was committed"

        await system.probe.wait_until(lambda: len(system.raw.where(dispatched, lambda r: r.key == key)) == 2,
                                      "the replayed copy on the source topic")
        source, replayed = system.raw.where(dispatched, lambda r: r.key == key)
        assert replayed.value == original == source.value
        assert replayed.headers == {"dlq-replayed-from": f"{dead_letters}:{first.partition}:{first.offset}"}

        await system.restart("issuer")
        await system.probe.wait_until(lambda: len(dead()) == 2, "the replayed copy dead-lettered again")
        second = dead()[1]
        assert second.value == original and second.headers["dlq-reason"] == "unsupported_version"
        assert (second.headers["dlq-source-partition"], second.headers["dlq-source-offset"]) == (
            str(replayed.partition), str(replayed.offset)), "the new dead letter points at the replayed copy"
        assert await system.fetch("issuer", "SELECT 1 FROM shipments WHERE shipment_id = $1", shipment) == []

        # A filter that matches nothing: the new dead letter is read (only it: the first is committed), skipped.
        other = await _replay(system, "--reason", "invalid_payload")
        assert other["read"] == 1 and other["replayed"] == 0 and other["unsupported_version"] == 1
