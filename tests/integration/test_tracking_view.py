"""The customer's tracking view, through a real notifier process, broker, database and SMTP sink.

The session's services run without a tracking key ring (their notifier serves no HTTP). This
module starts a second notifier in the same namespace with OTP_TRACKING_KEYS_FILE and
OTP_NOTIFIER_HTTP_PORT=0 (it logs the port it got). Both notifiers share the consumer group
and the schema, so whichever one handles an OtpIssued writes the tracking row.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.events import OtpIssued
from stack.environment import PROJECT_ROOT
from stack.services import ServiceProcesses
from tests.integration.harness import Probe, zone_with_local_hour

pytestmark = pytest.mark.integration

_LISTENING = re.compile(r"tracking view listening on http://127\.0\.0\.1:(\d+)")


@dataclass(frozen=True)
class TrackingNotifier:
    port: int
    env: dict[str, str]
    log: Path


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@pytest.fixture(scope="module")
def tracking_notifier(services: ServiceProcesses,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingNotifier]:
    keys = tmp_path_factory.mktemp("tracking") / "tracking.keys"
    document = {"active": "it-1", "keys": {"it-1": base64.b64encode(os.urandom(32)).decode()}}
    fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    env = {**services.env, "OTP_TRACKING_KEYS_FILE": str(keys), "OTP_NOTIFIER_HTTP_PORT": "0"}
    processes = ServiceProcesses(env=env, log_dir=services.log_dir / "tracking-view", instances=1)
    processes.log_dir.mkdir(parents=True, exist_ok=True)
    processes.start_instance("notifier", 1)
    log = processes.log_dir / "notifier-1.log"
    try:
        processes.wait_started()
        deadline = time.monotonic() + 30
        while not (match := _LISTENING.search(log.read_text(errors="replace"))):
            if time.monotonic() > deadline or processes.alive() == []:
                raise AssertionError(f"the tracking view did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield TrackingNotifier(port=int(match.group(1)), env=env, log=log)
    finally:
        codes = processes.stop()
    assert codes == {"notifier-1": 0}, f"the tracking notifier did not stop cleanly: {codes}"


async def http(port: int, method: str, target: str, *headers: str) -> Answer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers]
        if method == "POST":
            head.append("Content-Length: 0")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)  # the server always closes
    finally:
        writer.close()
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines)
    assert fields["Connection"] == "close" and int(fields["Content-Length"]) == len(body)
    return Answer(int(status_line.split(" ")[1]), fields, body)


async def issue_token(env: dict[str, str], shipment_id: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.notifier.tracking", "issue-token", shipment_id, "--days", "1",
        cwd=PROJECT_ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_the_customer_sees_the_emailed_code_and_can_have_it_resent(
        probe: Probe, tracking_notifier: TrackingNotifier, services: ServiceProcesses):
    port, env = tracking_notifier.port, tracking_notifier.env
    shipment = probe.new_shipment_id()
    await probe.dispatch(shipment, zone=zone_with_local_hour(probe.clock.now(), 6, 14), locale="en-GB")
    issued: OtpIssued = await probe.wait_for(
        lambda o: isinstance(o.event, OtpIssued) and o.event.shipment_id == shipment, f"OtpIssued for {shipment}")
    mail = await probe.email_for(issued.code_id)
    token = await issue_token(env, shipment)

    page = await http(port, "GET", f"/track/{shipment}?token={token}", "Accept: application/json")
    assert page.status == 200, page
    view = json.loads(page.body)
    assert view["code"] == mail.code and view["status"] == "valid"
    assert view["order_reference"] == issued.order_reference and view["delivery_date"] == str(issued.delivery_date)

    page = await http(port, "GET", f"/track/{shipment}?token={token}")
    assert page.status == 200 and mail.code.encode() in page.body
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert page.headers["X-Content-Type-Options"] == "nosniff"

    other = await issue_token(env, probe.new_shipment_id())
    payload, mac = token.split(".")
    for bad in (other, f"{payload}.{mac[::-1]}", "", "not-a-token"):
        denied = await http(port, "GET", f"/track/{shipment}?token={bad}")
        assert denied.status == 403 and denied.body == b"403 Forbidden\n" and mail.code.encode() not in denied.body
    unknown = probe.new_shipment_id()
    assert (await http(port, "GET", f"/track/{unknown}?token={await issue_token(env, unknown)}")).status == 404
    assert (await http(port, "GET", f"/track/{shipment}/resend?token={token}")).status == 405
    assert (await http(port, "POST", f"/track/{shipment}/resend", f"Authorization: Bearer {other}")).status == 403

    resent = await http(port, "POST", f"/track/{shipment}/resend", f"Authorization: Bearer {token}")
    assert resent.status == 202, resent

    def two_emails() -> bool:
        probe.mailbox.poll()
        return len(probe.mailbox.by_code_id.get(issued.code_id, [])) >= 2
    await probe.wait_until(two_emails, f"the resent email for {issued.code_id}")
    first, second = probe.mailbox.by_code_id[issued.code_id][:2]
    assert second.code == first.code == mail.code and second.recipient == first.recipient
    assert second.message_id == first.message_id.replace("@", ".resend-1@")

    again = await http(port, "POST", f"/track/{shipment}/resend", f"Authorization: Bearer {token}")
    assert again.status == 429 and int(again.headers["Retry-After"]) > 0

    statuses = [(await http(port, "GET", f"/track/{shipment}?token={token}")).status for _ in range(10)]
    assert 429 in statuses and statuses[0] == 200 and set(statuses) == {200, 429}, statuses
    limited = await http(port, "GET", f"/track/{shipment}?token={token}")
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1

    await asyncio.sleep(0.2)  # the access log line is written after the answer
    log = tracking_notifier.log.read_text(errors="replace")
    assert "GET /track/{shipment_id} 200 " in log and "POST /track/{shipment_id}/resend 202 " in log
    assert token not in log and mac not in log and mail.code not in log
    if "OTP_TRACKING_KEYS_FILE" not in services.env:  # the session's notifier: no key ring, no HTTP
        assert "tracking view off" in (services.log_dir / "notifier-1.log").read_text(errors="replace")
