"""The README's failure windows, hit on purpose: a service dies between two effects, restarts,
and the outcome is still exactly once (or, for SMTP, a counted repeat with the same Message-ID).

Each test runs its own four services in a fresh namespace, armed with `OTP_CRASH_AT` (see
`shared/faults.py`): the named point kills the process with exit code 86 the first time it
is reached, and the restarted instance, which finds the marker in `OTP_CRASH_MARKER_DIR`,
runs on. Every service gets the same environment; the first process to reach the point
dies, and in each scenario below only one service can reach it first.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from shared.clock import ScaledClock
from shared.events import NotificationSent, OtpIssued, OtpNotRequired, RejectionReason
from shared.faults import CRASH_EXIT_CODE
from tests.integration.harness import zone_with_local_hour
from tests.integration.isolated import IsolatedSystem, RawRecord, isolated_system

pytestmark = pytest.mark.integration

SETTLE_SECONDS = 2.0  # after the expected outcome, how long a duplicate gets to show up


def _armed(point: str, markers: Path) -> dict[str, str]:
    return {"OTP_CRASH_AT": point, "OTP_CRASH_MARKER_DIR": str(markers)}


def _issued_records(system: IsolatedSystem, shipment: str) -> list[RawRecord]:
    return system.raw.where(system.topics.issuance, lambda r: r.key == shipment.encode()
                            and r.document()["event_type"] == OtpIssued.event_type)


async def _crashed(system: IsolatedSystem, name: str) -> None:
    code = await system.wait_exit(name)
    assert code == CRASH_EXIT_CODE, f"{name} exited with {code}, not at the crash point:\n{system.log(name)[-3000:]}"
    assert sorted(system.processes.alive()) == sorted(n for n in system.processes.processes if n != name)


async def _dispatch(system: IsolatedSystem) -> tuple[str, str]:
    shipment = system.probe.new_shipment_id()
    zone = zone_with_local_hour(system.probe.clock.now(), 6, 14)
    await system.probe.dispatch(shipment, zone=zone)
    return shipment, f"{shipment}.d1"


async def _mails(system: IsolatedSystem, code_id: str, count: int) -> list[str]:
    """Waits for `count` emails for the code, lets a further one arrive if it would, returns their Message-IDs."""
    def enough() -> bool:
        system.probe.mailbox.poll()
        return len(system.probe.mailbox.by_code_id.get(code_id, [])) >= count
    await system.probe.wait_until(enough, f"{count} email(s) for {code_id}")
    await asyncio.sleep(SETTLE_SECONDS)
    system.probe.mailbox.poll()
    return [mail.message_id for mail in system.probe.mailbox.by_code_id[code_id]]


async def test_crash_after_the_commit_before_the_relay_publishes(stack_env: dict[str, str], clock: ScaledClock,
                                                                tmp_path: Path):
    async with isolated_system(stack_env, clock, prefix="cwc",
                               extra_env=_armed("outbox.after_commit", tmp_path)) as system:
        shipment, code_id = await _dispatch(system)
        await _crashed(system, "issuer-1")

        # The window: state and outbox row committed, nothing published, the offset not committed.
        assert len(await system.fetch("issuer", "SELECT 1 FROM shipments WHERE shipment_id = $1", shipment)) == 1
        assert len(await system.fetch("issuer", "SELECT 1 FROM outbox WHERE key = $1", shipment)) == 1
        await asyncio.sleep(0.5)
        assert _issued_records(system, shipment) == []
        dispatched = system.raw.where(system.topics.dispatched, lambda r: r.key == shipment.encode())
        assert len(dispatched) == 1
        committed = await system.committed_offsets("issuer")
        assert committed.get(TopicPartition(dispatched[0].topic, dispatched[0].partition), 0) <= dispatched[0].offset

        await system.restart("issuer")
        issued = await system.probe.wait_for(
            lambda o: isinstance(o.event, OtpIssued) and o.event.shipment_id == shipment, "OtpIssued", 60)
        assert issued.code_id == code_id
        await system.probe.wait_for(
            lambda o: isinstance(o.event, NotificationSent) and o.event.code_id == code_id, "NotificationSent")
        mails = await _mails(system, code_id, 1)

        events = [(o.envelope, o.event) for o in system.probe.tap.events
                  if isinstance(o.event, OtpIssued) and o.event.shipment_id == shipment]
        codes = await system.fetch("issuer", "SELECT code_id FROM codes WHERE shipment_id = $1", shipment)
        print(f"\noutbox.after_commit: OtpIssued raw records {len(_issued_records(system, shipment))}, "
              f"distinct event ids {len({envelope.event_id for envelope, _ in events})}, codes {len(codes)}, "
              f"emails {len(mails)}")
        assert len({envelope.event_id for envelope, _ in events}) == 1
        assert {event.code_id for _, event in events} == {code_id}
        assert [row["code_id"] for row in codes] == [code_id]
        assert len(mails) == 1
        assert await system.fetch("issuer", "SELECT 1 FROM outbox") == []


async def test_crash_after_the_broker_acked_before_the_rows_are_deleted(stack_env: dict[str, str],
                                                                      clock: ScaledClock, tmp_path: Path):
    async with isolated_system(stack_env, clock, prefix="cwr",
                               extra_env=_armed("relay.after_publish_before_delete", tmp_path)) as system:
        shipment, code_id = await _dispatch(system)
        await _crashed(system, "issuer-1")
        assert len(await system.fetch("issuer", "SELECT 1 FROM outbox WHERE key = $1", shipment)) == 1

        await system.restart("issuer")
        await system.probe.wait_until(lambda: len(_issued_records(system, shipment)) >= 2,
                                      "the OtpIssued published a second time", 60)
        mails = await _mails(system, code_id, 1)
        records = _issued_records(system, shipment)
        event_ids = {record.document()["event_id"] for record in records}
        print(f"\nrelay.after_publish_before_delete: OtpIssued raw records {len(records)}, "
              f"distinct event ids {len(event_ids)}, emails {len(mails)}")
        assert len(records) == 2 and len(event_ids) == 1, "published twice, with the same event id"
        assert len(mails) == 1

        verifier_codes = await system.fetch("verifier", "SELECT code_id FROM codes WHERE shipment_id = $1", shipment)
        assert [row["code_id"] for row in verifier_codes] == [code_id]
        code = system.probe.mailbox.by_code_id[code_id][0].code
        first = await system.probe.attempt(shipment, code)
        assert first.outcome == "accepted" and first.code_id == code_id
        second = await system.probe.attempt(shipment, code)
        assert second.outcome == "rejected" and second.reason is RejectionReason.ALREADY_DELIVERED
        assert await system.fetch("issuer", "SELECT 1 FROM outbox") == []


async def test_crash_after_smtp_accepted_before_sent_is_recorded(stack_env: dict[str, str], clock: ScaledClock,
                                                                tmp_path: Path):
    async with isolated_system(stack_env, clock, prefix="cwn",
                               extra_env=_armed("notifier.after_smtp_accept", tmp_path)) as system:
        shipment, code_id = await _dispatch(system)
        await _crashed(system, "notifier-1")
        before = await system.fetch("notifier", "SELECT status, send_attempts FROM deliveries WHERE code_id = $1",
                                    code_id)
        assert [tuple(row) for row in before] == [("pending", 1)]

        await system.restart("notifier")
        sent = await system.probe.wait_for(
            lambda o: isinstance(o.event, NotificationSent) and o.event.code_id == code_id, "NotificationSent", 60)
        message_ids = await _mails(system, code_id, 2)
        after = await system.fetch("notifier", "SELECT status, send_attempts FROM deliveries WHERE code_id = $1",
                                   code_id)
        notifications = [o.event for o in system.probe.tap.events
                         if isinstance(o.event, NotificationSent) and o.event.code_id == code_id]
        raw_notifications = system.raw.where(system.topics.notifications, lambda r: r.key == shipment.encode())
        print(f"\nnotifier.after_smtp_accept: emails {len(message_ids)} with Message-IDs {set(message_ids)}, "
              f"deliveries {[tuple(row) for row in after]}, NotificationSent {len(notifications)} "
              f"(raw {len(raw_notifications)}, send_attempts {sent.send_attempts})")
        assert len(message_ids) == 2 and len(set(message_ids)) == 1, "sent again, with the same Message-ID"
        assert [tuple(row) for row in after] == [("sent", 2)]
        assert len(notifications) == 1 and len(raw_notifications) == 1
        assert sent.send_attempts == 2


BATCH = 200


async def test_sigterm_on_a_busy_issuer_exits_0_quickly_and_loses_nothing(stack_env: dict[str, str],
                                                                           clock: ScaledClock):
    # Batches of 50: the stop lands in one of them, and the rest of the 200 wait in the topic.
    async with isolated_system(stack_env, clock, prefix="cwt", extra_env={"OTP_CONSUMER_BATCH": "50"}) as system:
        probe = system.probe
        zone = zone_with_local_hour(probe.clock.now(), 6, 14)
        shipments = [probe.new_shipment_id() for _ in range(BATCH)]

        def answered() -> dict[str, list[uuid.UUID]]:
            seen: dict[str, list[uuid.UUID]] = {}
            for o in probe.tap.events:
                if isinstance(o.event, OtpIssued | OtpNotRequired):
                    seen.setdefault(o.event.shipment_id, []).append(o.envelope.event_id)
            return seen

        async def publish() -> None:  # all at once: the issuer fetches a full backlog
            await asyncio.gather(*(probe.dispatch(shipment, zone=zone, value="250.00" if number % 2 else "40.00")
                                   for number, shipment in enumerate(shipments)))

        publishing = asyncio.create_task(publish())
        await probe.wait_until(lambda: len(answered()) >= 1, "the issuer under way")
        issuer = system.processes.processes["issuer-1"]
        signalled = time.monotonic()
        issuer.send_signal(signal.SIGTERM)
        code = await system.wait_exit("issuer-1", timeout=30)
        elapsed = time.monotonic() - signalled
        still_publishing = not publishing.done()
        await publishing
        handled_by_first = len(await system.fetch("issuer", "SELECT 1 FROM shipments"))

        await system.restart("issuer", 2)
        await probe.wait_until(lambda: len(answered()) == BATCH, f"an answer for all {BATCH} shipments", 60)
        await asyncio.sleep(SETTLE_SECONDS)
        seen = answered()
        print(f"\nSIGTERM: issuer-1 exited {code} after {elapsed:.2f}s "
              f"(publishing {'still running' if still_publishing else 'done'}); it handled "
              f"{handled_by_first}/{BATCH}, issuer-2 the other {BATCH - handled_by_first}; "
              f"answers {len(seen)}, duplicates {sum(len(ids) - 1 for ids in seen.values())}")
        assert code == 0 and elapsed < 5.0
        assert 0 < handled_by_first < BATCH, "the stop should land while the batch is in flight"
        assert set(seen) == set(shipments) and all(len(ids) == 1 for ids in seen.values())
        assert len(await system.fetch("issuer", "SELECT 1 FROM shipments")) == BATCH
