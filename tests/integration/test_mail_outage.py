"""SMTP refusing mail: each refused email waits in its delivery row, none blocks the others,
and when the server takes mail again each code is emailed exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from shared.events import NotificationSent, OtpIssued
from stack.services import ServiceProcesses
from tests.integration.harness import Probe, zone_with_local_hour

pytestmark = pytest.mark.integration


async def test_refused_mail_is_queued_without_blocking_and_sent_once_when_smtp_is_back(
        probe: Probe, services: ServiceProcesses, stack_env: dict[str, str]):
    refuse = Path(stack_env["OTP_MAILDIR"]).parent / "refuse"
    schema = f'"{services.env["OTP_NAMESPACE"]}_notifier"'
    shipments = [probe.new_shipment_id() for _ in range(4)]
    connection = await asyncpg.connect(stack_env["OTP_PG_DSN"])
    refuse.touch()
    try:
        for shipment in shipments:
            await probe.dispatch(shipment, zone=zone_with_local_hour(probe.clock.now(), 6, 14))
        codes = [(await probe.wait_for(lambda o, s=s: isinstance(o.event, OtpIssued) and o.event.shipment_id == s,
                                       "OtpIssued")).code_id for s in shipments]

        async def statuses() -> list[str]:
            rows = await connection.fetch(f"SELECT status FROM {schema}.deliveries WHERE code_id = ANY($1)", codes)  # noqa: S608 - our schema name
            return [row["status"] for row in rows]
        # Every one of them reached SMTP and was queued: the first refusal held up no other.
        for _ in range(100):
            if sorted(await statuses()) == ["deferred"] * len(codes):
                break
            await asyncio.sleep(0.1)
        assert sorted(await statuses()) == ["deferred"] * len(codes)
    finally:
        refuse.unlink(missing_ok=True)
    for code_id in codes:
        await probe.email_for(code_id, timeout=30)
        await probe.wait_for(lambda o, c=code_id: isinstance(o.event, NotificationSent) and o.event.code_id == c,
                             "NotificationSent")
    probe.mailbox.poll()
    assert [len(probe.mailbox.by_code_id[code_id]) for code_id in codes] == [1] * len(codes)
    rows = await connection.fetch(
        f"SELECT status, send_attempts FROM {schema}.deliveries WHERE code_id = ANY($1)", codes)  # noqa: S608 - our schema name
    await connection.close()
    # Refused hand-overs are not counted as sends: each email went exactly once.
    assert sorted((row["status"], row["send_attempts"]) for row in rows) == [("sent", 1)] * len(codes)
