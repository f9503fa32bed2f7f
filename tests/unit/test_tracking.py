"""The tracking view: tokens, rate limits, rendering, and the HTTP adapter without a socket."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import json
import logging
import os
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from services.notifier import tracking
from services.notifier.mailer import OutgoingEmail, stable_message_id
from services.notifier.tracking import (
    TRACKING_COLUMNS,
    UPSERT_TRACKING_SQL,
    ResendPolicy,
    TokenBucket,
    TrackingRecord,
    build_view,
    issue_token,
    render_html,
    render_json,
    resend_message_id,
    verify_token,
    wants_json,
)
from services.notifier.web import (
    READ_LIMIT,
    ResendOutcome,
    TrackingApp,
    TrackingHttpServer,
)
from shared.clock import FixedClock
from shared.crypto import Keyring, seal
from shared.errors import TransientError
from shared.events import code_context

UTC = datetime.UTC
KEYS = Keyring(active="t2", keys={"t1": os.urandom(32), "t2": os.urandom(32)})
SEAL_KEYS = Keyring(active="s1", keys={"s1": os.urandom(32)})
NOW_UNIX = 1_800_000_000
CODE = "048213"
SERVICE_NOW = datetime.datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_record(**overrides: object) -> TrackingRecord:
    shipment_id = str(overrides.get("shipment_id", "ship-1"))
    code_id = str(overrides.get("code_id", "ship-1-d1"))
    key_id, blob = seal(SEAL_KEYS, SecretStr(CODE), code_context(shipment_id, code_id))
    base = TrackingRecord(
        shipment_id=shipment_id, code_id=code_id, day_number=1, key_id=key_id, sealed_blob=blob,
        order_reference="A-1001", delivery_date=datetime.date(2026, 12, 3), delivery_zone="America/Sao_Paulo",
        valid_from=datetime.datetime(2026, 12, 3, 3, 0, tzinfo=UTC),
        valid_until=datetime.datetime(2026, 12, 4, 0, 0, tzinfo=ZoneInfo("America/Sao_Paulo")),
        neighbour_allowed=True, recipient_name="Anna Müller", recipient_email="anna@customers.example",
        recipient_locale="de-DE",
    )
    return dataclasses.replace(base, **overrides)


# --------------------------------------------------------------------------- tokens


def test_a_token_names_one_shipment_and_its_expiry_in_the_documented_format():
    token = issue_token(KEYS, "ship-1", NOW_UNIX + 60)
    payload, mac = token.split(".")
    assert base64.urlsafe_b64decode(payload + "==") == f"ship-1|{NOW_UNIX + 60}".encode()
    assert len(base64.urlsafe_b64decode(mac + "==")) == 32 and "=" not in token
    assert verify_token(KEYS, token, shipment_id="ship-1", now_unix=NOW_UNIX)


def test_a_token_expires_at_its_expiry_instant():
    token = issue_token(KEYS, "ship-1", NOW_UNIX)
    assert verify_token(KEYS, token, shipment_id="ship-1", now_unix=NOW_UNIX - 0.001)
    assert not verify_token(KEYS, token, shipment_id="ship-1", now_unix=NOW_UNIX)
    assert not verify_token(KEYS, token, shipment_id="ship-1", now_unix=NOW_UNIX + 86400)


def test_a_token_for_another_shipment_or_from_another_key_is_refused():
    token = issue_token(KEYS, "ship-1", NOW_UNIX + 60)
    assert not verify_token(KEYS, token, shipment_id="ship-2", now_unix=NOW_UNIX)
    assert not verify_token(KEYS, token, shipment_id="ship-1x", now_unix=NOW_UNIX)
    stranger = Keyring(active="t2", keys={"t2": os.urandom(32)})
    assert not verify_token(stranger, token, shipment_id="ship-1", now_unix=NOW_UNIX)


def test_tokens_signed_with_a_retired_key_stay_valid_while_it_is_in_the_ring():
    old = Keyring(active="t1", keys={"t1": KEYS.keys["t1"]})
    assert verify_token(KEYS, issue_token(old, "ship-1", NOW_UNIX + 60), shipment_id="ship-1", now_unix=NOW_UNIX)


def test_every_tampered_character_is_refused():
    token = issue_token(KEYS, "ship-1", NOW_UNIX + 60)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for index, char in enumerate(token):
        if char == ".":
            continue
        other = alphabet[(alphabet.index(char) + 1) % len(alphabet)]
        forged = token[:index] + other + token[index + 1:]
        assert not verify_token(KEYS, forged, shipment_id="ship-1", now_unix=NOW_UNIX), index


def test_a_re_signed_longer_expiry_without_the_key_is_refused():
    token = issue_token(KEYS, "ship-1", NOW_UNIX + 60)
    forged_payload = _b64(f"ship-1|{NOW_UNIX + 10**6}".encode())
    assert not verify_token(KEYS, f"{forged_payload}.{token.split('.')[1]}", shipment_id="ship-1", now_unix=NOW_UNIX)


def test_non_canonical_or_malformed_tokens_are_refused():
    token = issue_token(KEYS, "ship-1", NOW_UNIX + 60)
    payload, mac = token.split(".")
    padded = f"{payload}{'=' * (-len(payload) % 4)}.{mac}"
    assert padded == token or not verify_token(KEYS, padded, shipment_id="ship-1", now_unix=NOW_UNIX)
    # Base64 ignores stray low bits in the last character: such a twin must not verify.
    for twin_char in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        twin = f"{payload}.{mac[:-1]}{twin_char}"
        if twin != token and base64.urlsafe_b64decode(twin.split(".")[1] + "==") == \
                base64.urlsafe_b64decode(mac + "=="):
            assert not verify_token(KEYS, twin, shipment_id="ship-1", now_unix=NOW_UNIX)
    for bad in (None, "", ".", token + ".", token.replace(".", ""), token + "x" * 300, f"{payload}.{mac}=",
                f"{payload}.{mac[:-2]}", f" {token}", token.replace("-", "+").replace("_", "/") + "+/"):
        assert not verify_token(KEYS, bad, shipment_id="ship-1", now_unix=NOW_UNIX)


def test_a_well_signed_but_malformed_payload_is_refused():
    def signed(payload: bytes) -> str:
        return f"{_b64(payload)}.{_b64(tracking._mac(KEYS.keys['t2'], payload))}"

    assert verify_token(KEYS, signed(f"ship-1|{NOW_UNIX + 5}".encode()), shipment_id="ship-1", now_unix=NOW_UNIX)
    for payload in (b"ship-1", f"ship-1|{NOW_UNIX + 5}|x".encode(), b"ship-1|+1900000000", b"ship-1|0",
                    b"ship-1|01900000000", "ship-1|1900000000\u00e9".encode(), b"ship 1|1900000000"):
        assert not verify_token(KEYS, signed(payload), shipment_id="ship-1", now_unix=NOW_UNIX), payload


def test_the_mac_is_compared_in_constant_time_before_anything_else(monkeypatch):
    calls: list[tuple[bytes, bytes]] = []
    real = tracking.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tracking.hmac, "compare_digest", spy)
    token = issue_token(KEYS, "ship-1", NOW_UNIX + 60)
    # Another shipment, and an expired token: the MAC is still checked first, against every key.
    assert not verify_token(KEYS, token, shipment_id="ship-2", now_unix=NOW_UNIX)
    assert len(calls) >= len(KEYS.keys) and all(len(a) == len(b) == 32 for a, b in calls[: len(KEYS.keys)])
    calls.clear()
    assert not verify_token(KEYS, token, shipment_id="ship-1", now_unix=NOW_UNIX + 61)
    assert len(calls) >= len(KEYS.keys)


def test_tokens_are_only_issued_for_valid_shipment_ids():
    with pytest.raises(ValueError):
        issue_token(KEYS, "ship|1", NOW_UNIX)
    with pytest.raises(ValueError):
        issue_token(KEYS, "ship-1", -5)


def test_the_command_line_prints_a_token_from_the_tracking_key_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "tracking.keys"
    path.write_text(json.dumps({"active": "a", "keys": {"a": base64.b64encode(KEYS.keys["t1"]).decode()}}))
    path.chmod(0o600)
    monkeypatch.setenv("OTP_TRACKING_KEYS_FILE", str(path))
    assert tracking.main(["issue-token", "ship-9", "--days", "2"]) == 0
    token = capsys.readouterr().out.strip()
    now = datetime.datetime.now(UTC).timestamp()
    assert verify_token(KEYS, token, shipment_id="ship-9", now_unix=now)
    assert not verify_token(KEYS, token, shipment_id="ship-9", now_unix=now + 2 * 86400 + 5)
    monkeypatch.delenv("OTP_TRACKING_KEYS_FILE")
    with pytest.raises(SystemExit):
        tracking.main(["issue-token", "ship-9"])
    monkeypatch.setenv("OTP_TRACKING_KEYS_FILE", str(path))
    with pytest.raises(SystemExit):
        tracking.main(["issue-token", "ship-9", "--days", "0"])


# --------------------------------------------------------------------------- rate limits


def test_the_token_bucket_allows_a_burst_then_refills_at_its_rate():
    bucket = TokenBucket(capacity=10, period_seconds=60)
    assert all(bucket.take("s", 100.0) == 0 for _ in range(10))
    wait = bucket.take("s", 100.0)
    assert wait == pytest.approx(6.0)
    assert bucket.take("other", 100.0) == 0
    assert bucket.take("s", 105.0) > 0
    assert bucket.take("s", 106.1) == 0
    assert bucket.take("s", 106.2) > 0
    assert bucket.take("s", 1000.0) == 0  # refilled, never above capacity
    assert sum(bucket.take("s", 1000.0) == 0 for _ in range(20)) == 9


def test_the_token_bucket_forgets_the_least_recently_used_keys_beyond_its_bound():
    bucket = TokenBucket(capacity=1, period_seconds=60, max_keys=3)
    for key in ("a", "b", "c"):
        bucket.take(key, 0.0)
    bucket.take("a", 0.0)  # "a" refused, and now the most recent
    bucket.take("d", 0.0)  # "b" is forgotten
    assert len(bucket._buckets) == 3 and "b" not in bucket._buckets
    assert bucket.take("a", 0.0) > 0 and bucket.take("c", 0.0) > 0


def test_resends_at_most_one_per_five_minutes_and_three_per_hour():
    policy = ResendPolicy()
    t0 = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    minutes = datetime.timedelta(minutes=1)
    assert policy.retry_after([], t0) == 0
    assert policy.retry_after([t0], t0 + minutes) == pytest.approx(240)
    assert policy.retry_after([t0], t0 + 5 * minutes) == 0
    three = [t0, t0 + 10 * minutes, t0 + 20 * minutes]
    assert policy.retry_after(three, t0 + 30 * minutes) == pytest.approx(30 * 60)
    assert policy.retry_after(three, t0 + 60 * minutes + datetime.timedelta(seconds=1)) == 0
    assert policy.retry_after([t0 - 61 * minutes] * 5, t0) == 0


def test_a_resend_message_id_is_the_stable_one_with_a_numbered_suffix():
    stable = stable_message_id("code-1", "delivery.example")
    resent = resend_message_id(stable, 2)
    assert resent == stable.replace("@", ".resend-2@") and resent.startswith("<otp-") and resent.endswith(">")
    with pytest.raises(ValueError):
        resend_message_id("no-at-sign", 1)


# --------------------------------------------------------------------------- record and rendering


def test_the_record_columns_are_the_dataclass_fields_and_the_upsert_never_regresses():
    assert TRACKING_COLUMNS == tuple(f.name for f in dataclasses.fields(TrackingRecord))
    for name in TRACKING_COLUMNS:
        assert name in UPSERT_TRACKING_SQL and name in tracking.SELECT_TRACKING_SQL
    assert "WHERE tracking.day_number < EXCLUDED.day_number" in UPSERT_TRACKING_SQL
    record = make_record()
    assert TrackingRecord.from_row(dict(zip(TRACKING_COLUMNS, record.as_row(), strict=True))) == record


def test_the_page_shows_the_code_validity_and_the_advice_in_the_customers_language():
    view = build_view(make_record(), CODE, SERVICE_NOW)
    page = render_html(view)
    assert '<html lang="de">' in page and CODE in page and "A-1001" in page
    assert "Donnerstag, 3. Dezember 2026" in page
    assert "23:59 Uhr (Ortszeit America/Sao_Paulo)" in page
    assert "niemals am Telefon" in page and "nicht mehr gültig" not in page.split("Zustellcode:")[0]
    document = json.loads(render_json(view))
    assert document["code"] == CODE and document["status"] == "valid"
    assert document["valid_until"] == "2026-12-04T00:00:00-03:00" and document["zone"] == "America/Sao_Paulo"
    assert "Telefon" in document["advice"]


def test_an_expired_code_is_not_shown():
    record = make_record(recipient_locale="en")
    view = build_view(record, CODE, record.valid_until)
    assert view.code is None and view.expired
    page = render_html(view)
    assert CODE not in page and "no longer valid" in page and "redelivery email" in page
    document = json.loads(render_json(view))
    assert document["code"] is None and document["status"] == "expired" and CODE not in render_json(view)
    with pytest.raises(ValueError):
        build_view(record, None, SERVICE_NOW)  # a valid code must be given while it is valid


def test_untrusted_text_is_escaped_and_stripped_of_control_characters():
    evil = '<script>alert("x")</script>&\r\nX-Injected: 1\u202e'
    record = make_record(order_reference=evil, delivery_zone="Not/A<Zone>", recipient_locale="pt-BR")
    view = build_view(record, CODE, SERVICE_NOW)
    page = render_html(view)
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;" in page
    assert "\r" not in page and "\u202e" not in page and "<Zone>" not in page
    assert '<html lang="pt-BR">' in page
    document = json.loads(render_json(view))
    assert "<script>" in document["order_reference"] and "\n" not in document["order_reference"]


def test_json_is_chosen_only_when_the_client_prefers_it():
    assert wants_json("application/json")
    assert wants_json("application/json, text/plain;q=0.5")
    assert wants_json("text/html;q=0.4, application/json")
    assert not wants_json(None) and not wants_json("") and not wants_json("*/*")
    assert not wants_json("text/html,application/xhtml+xml,application/json;q=0.9")
    assert not wants_json("application/json;q=0") and not wants_json("application/json;q=nan")


# --------------------------------------------------------------------------- the HTTP adapter


class FakeStore:
    def __init__(self, *records: TrackingRecord) -> None:
        self.records = {r.shipment_id: r for r in records}
        self.resends: list[tuple[str, datetime.datetime]] = []
        self.finished: list[tuple[int, str]] = []
        self.wall = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    async def current(self, shipment_id: str) -> TrackingRecord | None:
        return self.records.get(shipment_id)

    async def reserve_resend(self, shipment_id, policy, service_now, message_id_domain) -> ResendOutcome:
        record = self.records.get(shipment_id)
        if record is None:
            return ResendOutcome("unknown")
        if service_now >= record.valid_until:
            return ResendOutcome("expired", record)
        previous = [t for s, t in self.resends if s == shipment_id]
        if (wait := policy.retry_after(previous, self.wall)) > 0:
            return ResendOutcome("limited", record, retry_after=wait)
        self.resends.append((shipment_id, self.wall))
        number = len(previous) + 1
        message_id = resend_message_id(stable_message_id(record.code_id, message_id_domain), number)
        return ResendOutcome("reserved", record, len(self.resends), message_id)

    async def finish_resend(self, reservation_id: int, status: str, error: str | None = None) -> None:
        self.finished.append((reservation_id, status))


class FakeMailer:
    def __init__(self) -> None:
        self.sent: list[OutgoingEmail] = []
        self.fail: Exception | None = None

    async def send(self, email: OutgoingEmail) -> None:
        if self.fail:
            raise self.fail
        self.sent.append(email)


class FakeWriter:
    def __init__(self, peer: tuple[str, int] = ("203.0.113.9", 40000)) -> None:
        self.data = bytearray()
        self.closed = False
        self.peer = peer

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.data += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    async def wait_closed(self) -> None:
        return None

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.peer if name == "peername" else default


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _server(*records: TrackingRecord, clock: FixedClock | None = None, **limits: TokenBucket):
    store, mailer = FakeStore(*records), FakeMailer()
    app = TrackingApp(store=store, mailer=mailer, seal_keys=SEAL_KEYS, tracking_keys=KEYS,
                      clock=clock or FixedClock(SERVICE_NOW), message_id_domain="delivery.example",
                      wall=lambda: NOW_UNIX, **limits)
    return TrackingHttpServer(app, head_timeout=0.2), store, mailer


async def exchange(server: TrackingHttpServer, raw: bytes, *, eof: bool = True,
                   peer: tuple[str, int] = ("203.0.113.9", 40000)) -> Answer:
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    reader.feed_data(raw)
    if eof:
        reader.feed_eof()
    writer = FakeWriter(peer)
    await server.handle_connection(reader, writer)  # type: ignore[arg-type]
    assert writer.closed
    head, _, body = bytes(writer.data).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    version, status, _ = status_line.split(" ", 2)
    assert version == "HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines)
    assert headers["Connection"] == "close"
    assert int(headers["Content-Length"]) == len(body) or raw.startswith(b"HEAD ")
    return Answer(int(status), headers, body)


def get(path: str, *headers: str, method: str = "GET") -> bytes:
    return "\r\n".join([f"{method} {path} HTTP/1.1", "Host: track.example", *headers, "", ""]).encode()


def token_for(shipment_id: str = "ship-1", expiry: int = NOW_UNIX + 3600) -> str:
    return issue_token(KEYS, shipment_id, expiry)


async def test_the_page_with_a_valid_token_shows_the_code_with_strict_headers():
    server, _, _ = _server(make_record())
    answer = await exchange(server, get(f"/track/ship-1?token={token_for()}"))
    assert answer.status == 200 and CODE.encode() in answer.body
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Vary"] == "Accept" and "Date" in answer.headers

    answer = await exchange(server, get(f"/track/ship-1?token={token_for()}", "Accept: application/json"))
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body)["code"] == CODE

    answer = await exchange(server, get(f"/track/ship-1?token={token_for()}", "Accept: text/html;q=0.5",
                                        "Accept: application/json"))
    assert answer.status == 200 and answer.headers["Content-Type"] == "application/json"

    answer = await exchange(server, get(f"/track/ship-1?token={token_for()}", method="HEAD"))
    assert answer.status == 200 and answer.body == b"" and int(answer.headers["Content-Length"]) > 0


async def test_every_bad_token_gets_the_same_403():
    server, _, _ = _server(make_record(), make_record(shipment_id="ship-2", code_id="ship-2-d1"))
    bodies = set()
    for target in ("/track/ship-1", "/track/ship-1?token=", "/track/ship-1?token=abc.def",
                   f"/track/ship-1?token={token_for('ship-2')}", f"/track/ship-1?token={token_for(expiry=NOW_UNIX)}",
                   f"/track/ship-1?token={token_for()}&token={token_for()}", f"/track/ship-1?tok={token_for()}"):
        answer = await exchange(server, get(target))
        assert answer.status == 403, target
        bodies.add(answer.body)
    assert bodies == {b"403 Forbidden\n"}


async def test_an_unknown_shipment_with_a_valid_token_is_404_and_other_paths_too():
    server, _, _ = _server(make_record())
    assert (await exchange(server, get(f"/track/ship-404?token={token_for('ship-404')}"))).status == 404
    for path in ("/", "/track/", "/track/ship-1/", "/track/a/b", "/track/ship%2D1", "/favicon.ico"):
        assert (await exchange(server, get(path))).status == 404, path


async def test_an_expired_code_is_not_shown_on_the_page():
    record = make_record(recipient_locale="en")
    server, _, _ = _server(record, clock=FixedClock(record.valid_until + datetime.timedelta(seconds=1)))
    answer = await exchange(server, get(f"/track/ship-1?token={token_for()}"))
    assert answer.status == 200 and CODE.encode() not in answer.body and b"no longer valid" in answer.body


async def test_page_views_are_limited_per_shipment_and_per_client():
    server, _, _ = _server(make_record())
    target = get(f"/track/ship-1?token={token_for()}")
    statuses = [(await exchange(server, target)).status for _ in range(11)]
    assert statuses == [200] * 10 + [429]
    answer = await exchange(server, target)
    assert answer.status == 429 and int(answer.headers["Retry-After"]) >= 1
    # Forged tokens do not eat the customer's per-shipment budget, but do count per client.
    server, _, _ = _server(make_record())
    for _ in range(59):
        assert (await exchange(server, get("/track/ship-1?token=x.y"), peer=("198.51.100.1", 1))).status == 403
    assert (await exchange(server, get("/track/ship-1?token=x.y"), peer=("198.51.100.1", 1))).status == 403
    assert (await exchange(server, get("/track/ship-1?token=x.y"), peer=("198.51.100.1", 1))).status == 429
    assert (await exchange(server, target, peer=("198.51.100.2", 1))).status == 200


async def test_a_resend_sends_the_same_email_again_with_a_numbered_message_id_and_is_limited():
    server, store, mailer = _server(make_record())
    bearer = f"Authorization: Bearer {token_for()}"
    answer = await exchange(server, get("/track/ship-1/resend", bearer, "Content-Length: 0", method="POST"))
    assert answer.status == 202 and len(mailer.sent) == 1
    email = mailer.sent[0]
    assert email.message_id == stable_message_id("ship-1-d1", "delivery.example").replace("@", ".resend-1@")
    assert email.headers["X-Delivery-Code-Id"] == "ship-1-d1" and email.to_address == "anna@customers.example"
    assert CODE in email.rendered.text and CODE not in email.rendered.subject and email.rendered.language == "de"
    assert store.finished == [(1, "sent")]

    answer = await exchange(server, get("/track/ship-1/resend", bearer, method="POST"))
    assert answer.status == 429 and answer.headers["Retry-After"] == "300" and len(mailer.sent) == 1

    store.wall += datetime.timedelta(minutes=5)
    answer = await exchange(server, get("/track/ship-1/resend", bearer, "Accept: application/json", method="POST"))
    assert answer.status == 202 and json.loads(answer.body) == {"status": "accepted"}
    assert mailer.sent[1].message_id.endswith(".resend-2@delivery.example>")


async def test_a_resend_needs_post_a_bearer_token_no_body_and_a_valid_code():
    server, store, mailer = _server(make_record())
    answer = await exchange(server, get(f"/track/ship-1/resend?token={token_for()}"))
    assert answer.status == 405 and answer.headers["Allow"] == "POST"
    answer = await exchange(server, get(f"/track/ship-1/resend?token={token_for()}", method="POST"))
    assert answer.status == 403
    for header in ("Authorization: Basic abc", "Authorization: Bearer", f"Authorization: Bearer {token_for('x')}"):
        assert (await exchange(server, get("/track/ship-1/resend", header, method="POST"))).status == 403
    answer = await exchange(server, get("/track/ship-1/resend", f"Authorization: bearer {token_for()}",
                                        "Content-Length: 2", method="POST") + b"{}")
    assert answer.status == 413
    assert (await exchange(server, get("/track/ship-9/resend", f"Authorization: Bearer {token_for('ship-9')}",
                                       method="POST"))).status == 404
    assert not mailer.sent

    record = make_record()
    server, store, mailer = _server(record, clock=FixedClock(record.valid_until))
    answer = await exchange(server, get("/track/ship-1/resend", f"Authorization: Bearer {token_for()}", method="POST"))
    assert answer.status == 409 and b"expired" in answer.body and not mailer.sent


async def test_a_resend_the_mail_server_defers_answers_503():
    server, store, mailer = _server(make_record())
    mailer.fail = TransientError("SMTP 451")
    answer = await exchange(server, get("/track/ship-1/resend", f"Authorization: Bearer {token_for()}", method="POST"))
    assert answer.status == 503 and answer.headers["Retry-After"] == "60" and store.finished == [(1, "failed")]


async def test_methods_a_route_does_not_serve_get_405_with_allow():
    server, _, _ = _server(make_record())
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "BREW", "PATCH"):
        answer = await exchange(server, get(f"/track/ship-1?token={token_for()}", method=method))
        assert answer.status == 405 and answer.headers["Allow"] == "GET, HEAD", method


@pytest.mark.parametrize(("raw", "status"), [
    (b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /" + b"a" * 40000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"a" * 200) for i in range(41)) + b"\r\n",
     431),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 41 + b"\r\n", 431),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /#x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTPS/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\n", 400),  # the head ends early
    (b"GET / HTTP/1.0\r\n\r\n", 404),  # HTTP/1.0 needs no Host
])
async def test_request_parsing_is_strict_and_bounded(raw: bytes, status: int):
    server, _, _ = _server(make_record())
    answer = await exchange(server, raw)
    assert answer.status == status
    assert answer.headers["Cache-Control"] == "no-store" and answer.body.startswith(f"{status} ".encode())


async def test_a_client_that_sends_nothing_is_just_closed_and_a_slow_one_gets_408():
    server, _, _ = _server(make_record())
    reader = asyncio.StreamReader(limit=READ_LIMIT)
    reader.feed_eof()
    writer = FakeWriter()
    await server.handle_connection(reader, writer)  # type: ignore[arg-type]
    assert writer.closed and writer.data == b""
    answer = await exchange(server, b"GET /track/ship-1 HTTP/1.1\r\nHost: x\r\n", eof=False)
    assert answer.status == 408


async def test_the_log_has_method_route_status_and_duration_but_never_the_token_or_code(caplog):
    server, _, _ = _server(make_record())
    token = token_for()
    with caplog.at_level(logging.DEBUG):
        await exchange(server, get(f"/track/ship-1?token={token}"))
        await exchange(server, get("/track/ship-1/resend", f"Authorization: Bearer {token}", method="POST"))
        await exchange(server, get("/track/ship-1?token=forged.token"))
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "GET /track/{shipment_id} 200 " in text and "POST /track/{shipment_id}/resend 202 " in text
    assert "GET /track/{shipment_id} 403 " in text
    assert token not in text and token.split(".")[1] not in text and CODE not in text and "forged" not in text
