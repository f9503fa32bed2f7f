"""The tracking view's HTTP adapter: a minimal, strict HTTP/1.1 server on asyncio streams.

Routes (bound to 127.0.0.1):

* ``GET|HEAD /track/<shipment_id>?token=…`` — the current code's page, HTML or (``Accept:
  application/json``) JSON;
* ``POST /track/<shipment_id>/resend`` with ``Authorization: Bearer <token>`` and no body —
  sends the current code's email again (202), at most 3 per hour and 1 per 5 minutes per
  shipment (counted in the `resends` table, so across restarts and instances; 429 with
  Retry-After beyond).

Strictness: one request per connection and always ``Connection: close``; request line at
most 2 KiB (414 beyond), header section at most 8 KiB and 40 fields (431 beyond), CRLF line
ends, no obs-fold, no space before a colon, exactly one Host, no request body at all (413 for
a Content-Length above 0, 501 for Transfer-Encoding, 400 for both), origin-form targets only,
HTTP/1.0 and 1.1 only (505 otherwise); 10 s to send the head (408), 64 connections at once
(503 beyond). Any method a route does not serve gets 405 with Allow.

A bad, missing, expired or other shipment's token gets the same 403; an unknown shipment with
a valid token 404. In-memory token buckets (per process: a restart forgives a little) limit
every request to 60 a minute per client IP, and authorised requests to 10 a minute per
shipment. Note: behind a reverse proxy every client has the proxy's address, so the per-IP
limit becomes a global one.

Logged per request: method, route template, status, duration. Never the target (it holds
the token), a header, or a code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from typing import Literal, Protocol
from urllib.parse import parse_qsl

import asyncpg

from services.notifier.handlers import compose_email
from services.notifier.mailer import Mailer, PermanentMailError, stable_message_id
from services.notifier.tracking import (
    SELECT_TRACKING_SQL,
    SHIPMENT_ID_PATTERN,
    ResendPolicy,
    TokenBucket,
    TrackingRecord,
    build_view,
    render_html,
    render_json,
    resend_message_id,
    retry_after_header,
    verify_token,
    wants_json,
)
from shared.clock import Clock
from shared.crypto import Keyring, open_sealed
from shared.errors import SealError, TransientError
from shared.events import code_context

__all__ = [
    "HttpError",
    "PgTrackingStore",
    "Request",
    "ResendOutcome",
    "Response",
    "TrackingApp",
    "TrackingHttpServer",
    "TrackingStore",
    "encode_response",
    "parse_header_line",
    "parse_request_line",
    "read_request",
]

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 2048  # bytes, CRLF included
MAX_HEADER_BYTES = 8192  # all field lines together, CRLFs included
MAX_HEADERS = 40
READ_LIMIT = 16 * 1024  # the stream's buffer: a longer line is refused unread
HEAD_TIMEOUT = 10.0
HANDLER_TIMEOUT = 30.0
WRITE_TIMEOUT = 10.0
MAX_CONNECTIONS = 64

REASONS = {
    200: "OK", 202: "Accepted", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
    414: "URI Too Long", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token (method, field name)
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]")
_ORIGIN_FORM = re.compile(r"/[!$-~]*")  # visible ASCII without '"' and '#'
_BAD_FIELD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_VIEW = re.compile(rf"/track/(?P<shipment_id>{SHIPMENT_ID_PATTERN})")
_RESEND = re.compile(rf"/track/(?P<shipment_id>{SHIPMENT_ID_PATTERN})/resend")
_SINGLETONS = ("host", "content-length", "authorization")  # a second one is a 400


# --------------------------------------------------------------------------- messages


class HttpError(Exception):
    """A request that gets an error answer before any route sees it."""

    def __init__(self, status: int, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


class _ClientGone(Exception):
    """The peer closed the connection before sending a request line."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    version: str
    headers: tuple[tuple[str, str], ...]  # lower-case names, in order
    client: str

    def header(self, name: str) -> str | None:
        """The field's value; repeated list-valued fields (Accept) joined with ", "."""
        values = [value for key, value in self.headers if key == name]
        return ", ".join(values) if values else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


def error_response(status: int, headers: tuple[tuple[str, str], ...] = (), text: str | None = None) -> Response:
    """A generic body: the status only, so a 403 says nothing about which check failed."""
    return Response(status, f"{text or f'{status} {REASONS[status]}'}\n".encode(), headers=headers)


def encode_response(response: Response, *, head_only: bool = False, now: float | None = None) -> bytes:
    lines = [
        f"HTTP/1.1 {response.status} {REASONS[response.status]}",
        f"Date: {formatdate(now, usegmt=True)}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in SECURITY_HEADERS + response.headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + response.body


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """``method SP origin-form SP HTTP/1.x CRLF`` → (method, target, version); strict."""
    if len(line) > MAX_REQUEST_LINE:
        raise HttpError(414)
    if not line.endswith(b"\r\n"):
        raise HttpError(400)
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400) from None
    parts = text.split(" ")
    if len(parts) != 3:
        raise HttpError(400)
    method, target, version = parts
    if not _TOKEN.fullmatch(method) or not _VERSION.fullmatch(version) or not _ORIGIN_FORM.fullmatch(target):
        raise HttpError(400)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HttpError(505)
    return method, target, version


def parse_header_line(line: bytes) -> tuple[str, str]:
    """``name: OWS value OWS CRLF`` → (lower-case name, value); no obs-fold, no space before ':'."""
    if not line.endswith(b"\r\n"):
        raise HttpError(400)
    name, colon, value = line[:-2].decode("latin-1").partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise HttpError(400)
    value = value.strip(" \t")
    if _BAD_FIELD_VALUE.search(value):
        raise HttpError(400)
    return name.lower(), value


async def _read_line(reader: asyncio.StreamReader, limit: int, too_long: int, first: bool) -> bytes:
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise HttpError(too_long) from None
    except asyncio.IncompleteReadError as exc:
        if first and not exc.partial:
            raise _ClientGone from None
        raise HttpError(400) from None
    if len(line) > limit:
        raise HttpError(too_long)
    return line


async def read_request(reader: asyncio.StreamReader, client: str) -> Request:
    """Reads and checks one request head; the connection carries no body (none is accepted)."""
    method, target, version = parse_request_line(await _read_line(reader, MAX_REQUEST_LINE, 414, True))
    headers: list[tuple[str, str]] = []
    used = 0
    while True:
        line = await _read_line(reader, MAX_HEADER_BYTES, 431, False)
        if line == b"\r\n":
            break
        used += len(line)
        if used > MAX_HEADER_BYTES or len(headers) >= MAX_HEADERS:
            raise HttpError(431)
        headers.append(parse_header_line(line))
    names = [name for name, _ in headers]
    if any(names.count(name) > 1 for name in _SINGLETONS):
        raise HttpError(400)
    if version == "HTTP/1.1" and "host" not in names:
        raise HttpError(400)
    length = dict(headers).get("content-length")
    if "transfer-encoding" in names:
        raise HttpError(400 if length is not None else 501)
    if length is not None:
        if not length.isdigit() or len(length) > 12:
            raise HttpError(400)
        if int(length) > 0:
            raise HttpError(413)
    path, _, query = target.partition("?")
    return Request(method=method, path=path, query=query, version=version, headers=tuple(headers), client=client)


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True)
class ResendOutcome:
    kind: Literal["reserved", "unknown", "expired", "limited"]
    record: TrackingRecord | None = None
    reservation_id: int | None = None
    message_id: str | None = None
    retry_after: float = 0.0


class TrackingStore(Protocol):
    async def current(self, shipment_id: str) -> TrackingRecord | None: ...

    async def reserve_resend(
        self, shipment_id: str, policy: ResendPolicy, service_now: datetime, message_id_domain: str
    ) -> ResendOutcome: ...

    async def finish_resend(self, reservation_id: int, status: str, error: str | None = None) -> None: ...


@dataclass
class PgTrackingStore:
    pool: asyncpg.Pool

    async def current(self, shipment_id: str) -> TrackingRecord | None:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(SELECT_TRACKING_SQL, shipment_id)
        return TrackingRecord.from_row(row) if row is not None else None

    async def reserve_resend(
        self, shipment_id: str, policy: ResendPolicy, service_now: datetime, message_id_domain: str
    ) -> ResendOutcome:
        """One transaction, serialised per shipment by the tracking row's lock (across instances).
        The limits use the database's wall clock, the code's validity the service clock."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(SELECT_TRACKING_SQL + " FOR UPDATE", shipment_id)
            if row is None:
                return ResendOutcome("unknown")
            record = TrackingRecord.from_row(row)
            if service_now >= record.valid_until:
                return ResendOutcome("expired", record)
            now: datetime = await conn.fetchval("SELECT clock_timestamp()")
            previous = [r["requested_at"] for r in await conn.fetch(
                "SELECT requested_at FROM resends WHERE shipment_id = $1 AND requested_at > $2",
                shipment_id, now - policy.window)]
            wait = policy.retry_after(previous, now)
            if wait > 0:
                return ResendOutcome("limited", record, retry_after=wait)
            number = await conn.fetchval(
                "SELECT coalesce(max(number), 0) + 1 FROM resends WHERE code_id = $1", record.code_id)
            message_id = resend_message_id(stable_message_id(record.code_id, message_id_domain), number)
            reservation = await conn.fetchval(
                "INSERT INTO resends (shipment_id, code_id, number, message_id, status, requested_at) "
                "VALUES ($1, $2, $3, $4, 'pending', $5) RETURNING id",
                shipment_id, record.code_id, number, message_id, now)
        return ResendOutcome("reserved", record, reservation, message_id)

    async def finish_resend(self, reservation_id: int, status: str, error: str | None = None) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE resends SET status = $2, last_error = $3, updated_at = now() WHERE id = $1",
                reservation_id, status, error)


# --------------------------------------------------------------------------- the application

Route = Callable[[Request, str], Awaitable[Response]]


@dataclass
class TrackingApp:
    store: TrackingStore
    mailer: Mailer
    seal_keys: Keyring
    tracking_keys: Keyring
    clock: Clock  # the service clock: decides whether a code is still valid
    message_id_domain: str
    wall: Callable[[], float] = time.time  # token expiry
    monotonic: Callable[[], float] = time.monotonic  # token buckets
    per_ip: TokenBucket = field(default_factory=lambda: TokenBucket(capacity=60, period_seconds=60))
    per_shipment: TokenBucket = field(default_factory=lambda: TokenBucket(capacity=10, period_seconds=60))
    resend_policy: ResendPolicy = field(default_factory=ResendPolicy)

    def resolve(self, path: str) -> tuple[str, Route | None, str]:
        """(route template for the log, handler, shipment id)."""
        if match := _VIEW.fullmatch(path):
            return "/track/{shipment_id}", self.view, match["shipment_id"]
        if match := _RESEND.fullmatch(path):
            return "/track/{shipment_id}/resend", self.resend, match["shipment_id"]
        return "-", None, ""

    async def handle(self, request: Request) -> tuple[str, Response]:
        template, route, shipment_id = self.resolve(request.path)
        if (wait := self.per_ip.take(request.client, self.monotonic())) > 0:
            return template, error_response(429, (("Retry-After", retry_after_header(wait)),))
        if route is None:
            return template, error_response(404)
        return template, await route(request, shipment_id)

    def _authorised(self, token: str | None, shipment_id: str) -> bool:
        return verify_token(self.tracking_keys, token, shipment_id=shipment_id, now_unix=self.wall())

    def _shipment_limited(self, shipment_id: str) -> Response | None:
        if (wait := self.per_shipment.take(shipment_id, self.monotonic())) > 0:
            return error_response(429, (("Retry-After", retry_after_header(wait)),))
        return None

    async def view(self, request: Request, shipment_id: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return error_response(405, (("Allow", "GET, HEAD"),))
        try:
            token = _query_token(request.query)
        except HttpError as exc:
            return error_response(exc.status)
        if not self._authorised(token, shipment_id):
            return error_response(403)
        if limited := self._shipment_limited(shipment_id):
            return limited
        record = await self.store.current(shipment_id)
        if record is None:
            return error_response(404)
        now = self.clock.now()
        code = None
        if now < record.valid_until:
            code = open_sealed(self.seal_keys, record.key_id, record.sealed_blob,
                               code_context(record.shipment_id, record.code_id)).get_secret_value()
        page = build_view(record, code, now)
        vary = (("Vary", "Accept"),)
        if wants_json(request.header("accept")):
            return Response(200, render_json(page).encode(), "application/json", vary)
        return Response(200, render_html(page).encode(), "text/html; charset=utf-8", vary)

    async def resend(self, request: Request, shipment_id: str) -> Response:
        if request.method != "POST":
            return error_response(405, (("Allow", "POST"),))
        if not self._authorised(_bearer(request.header("authorization")), shipment_id):
            return error_response(403)
        if limited := self._shipment_limited(shipment_id):
            return limited
        outcome = await self.store.reserve_resend(
            shipment_id, self.resend_policy, self.clock.now(), self.message_id_domain)
        if outcome.kind == "unknown":
            return error_response(404)
        if outcome.kind == "expired":
            return error_response(409, text="The code has expired; a new one comes with the redelivery email.")
        if outcome.kind == "limited":
            return error_response(429, (("Retry-After", retry_after_header(outcome.retry_after)),))
        assert outcome.record is not None and outcome.reservation_id is not None and outcome.message_id
        try:
            await self.mailer.send(compose_email(self.seal_keys, outcome.record, outcome.message_id))
        except TransientError as exc:
            await self.store.finish_resend(outcome.reservation_id, "failed", f"{type(exc).__name__}: {exc}"[:300])
            log.warning("resend of code %s deferred: %s", outcome.record.code_id, type(exc).__name__)
            return error_response(503, (("Retry-After", "60"),))
        except (PermanentMailError, SealError, ValueError) as exc:
            await self.store.finish_resend(outcome.reservation_id, "failed", f"{type(exc).__name__}: {exc}"[:300])
            log.error("resend of code %s failed: %s", outcome.record.code_id, type(exc).__name__)
            return error_response(500)
        await self.store.finish_resend(outcome.reservation_id, "sent")
        if wants_json(request.header("accept")):
            return Response(202, b'{"status":"accepted"}', "application/json")
        return error_response(202, text="A new email with your code is on its way.")


def _query_token(query: str) -> str | None:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=8)
    except ValueError:
        raise HttpError(400) from None
    tokens = [value for name, value in pairs if name == "token"]
    return tokens[0] if len(tokens) == 1 else None


def _bearer(value: str | None) -> str | None:
    if value is None:
        return None
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


# --------------------------------------------------------------------------- the server


@dataclass
class TrackingHttpServer:
    app: TrackingApp
    host: str = "127.0.0.1"
    port: int = 8081
    max_connections: int = MAX_CONNECTIONS
    head_timeout: float = HEAD_TIMEOUT
    handler_timeout: float = HANDLER_TIMEOUT
    _server: asyncio.Server | None = None
    _connections: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port, limit=READ_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("tracking view listening on http://%s:%d", self.host, self.port)
        return self.port

    async def serve(self, stop: asyncio.Event) -> None:
        """A runtime background task: serves until ``stop``, then lets requests in flight finish."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.close()

    async def close(self, grace: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.close()
        if self._connections:
            _, pending = await asyncio.wait(set(self._connections), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        log.info("tracking view stopped")

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            await _write(writer, encode_response(error_response(503, (("Retry-After", "1"),))))
            log.warning("tracking view: too many connections, answered 503")
            return
        self._connections.add(task)
        try:
            await self.handle_connection(reader, writer)
        finally:
            self._connections.discard(task)

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        started = time.monotonic()
        method, template = "-", "-"
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "-"
        try:
            async with asyncio.timeout(self.head_timeout):
                request = await read_request(reader, client)
            method = request.method[:16]
            async with asyncio.timeout(self.handler_timeout):
                template, response = await self.app.handle(request)
        except _ClientGone:
            await _write(writer, b"")
            return
        except HttpError as exc:
            response = error_response(exc.status, exc.headers)
        except TimeoutError:
            response = error_response(408 if method == "-" else 503)
        except Exception:
            log.exception("tracking view: %s %s failed", method, template)
            response = error_response(500)
        await _write(writer, encode_response(response, head_only=method == "HEAD"))
        log.info("%s %s %d %.1fms", method, template, response.status, (time.monotonic() - started) * 1000)


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Writes the whole answer, then closes; a peer that went away is not an error."""
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(WRITE_TIMEOUT):
            if data:
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
    if not writer.is_closing():
        writer.close()
