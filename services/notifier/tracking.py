"""The customer's tracking view: the pure parts.

* **Tokens.** ``base64url(shipment_id "|" expiry_unix) "." base64url(HMAC-SHA256(key, payload))``,
  unpadded. Signed with the active key of the tracking key ring (``OTP_TRACKING_KEYS_FILE``);
  verified against every key in the ring (rotation without a key id in the token), in constant
  time, and only in canonical encoding. A token names one shipment; it is the customer's,
  never the courier's or an operator's. Expiry is wall-clock time (a credential's lifetime),
  unlike a code's validity, which follows the service clock.
* **Rate limits.** An in-memory token bucket (page views, per client IP and per shipment) and
  the resend policy, decided from the resend times the database holds (so it holds across
  restarts and instances).
* **Rendering.** The page (HTML or JSON): order reference, delivery date, validity in local
  time and zone, the code while it is valid, and the advice to tell it only in person.
  All untrusted text is cleaned of control characters and HTML-escaped.

No I/O here, no clock reads: every ``now`` is an argument. The only exception is the small
command-line tool at the bottom (``python -m services.notifier.tracking issue-token ...``).

The row the notifier keeps per shipment (`tracking`, migration 002) maps to `TrackingRecord`;
the SQL that writes it lives next to the mapping, so the handler and the web adapter agree.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import hmac
import html
import json
import math
import re
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.notifier.templates import (
    _STRINGS,
    _clean,
    _format_date,
    _language_for,
    _last_valid_minute,
    _truncate,
)
from shared.crypto import Keyring
from shared.events import OtpIssued

__all__ = [
    "MAX_TOKEN_LENGTH",
    "SHIPMENT_ID_PATTERN",
    "UPSERT_TRACKING_SQL",
    "ResendPolicy",
    "TokenBucket",
    "TrackingRecord",
    "TrackingView",
    "build_view",
    "issue_token",
    "render_html",
    "render_json",
    "resend_message_id",
    "verify_token",
    "wants_json",
]

SHIPMENT_ID_PATTERN = r"[A-Za-z0-9._:-]{1,64}"
_SHIPMENT_ID = re.compile(SHIPMENT_ID_PATTERN)
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_EXPIRY = re.compile(r"[1-9][0-9]{0,11}")
MAX_TOKEN_LENGTH = 256
_MAC_LENGTH = 32


# --------------------------------------------------------------------------- tokens


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode_canonical(text: str) -> bytes | None:
    """Unpadded base64url, and only its canonical form (no padding, no stray low bits)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == text else None


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def issue_token(keys: Keyring, shipment_id: str, expires_at_unix: int) -> str:
    """A token for one shipment, valid until ``expires_at_unix`` (wall clock, exclusive)."""
    if not _SHIPMENT_ID.fullmatch(shipment_id):
        raise ValueError("not a valid shipment id")
    if not _EXPIRY.fullmatch(str(expires_at_unix)):
        raise ValueError("expiry must be a positive unix time")
    payload = f"{shipment_id}|{expires_at_unix}".encode("ascii")
    return f"{_b64encode(payload)}.{_b64encode(_mac(keys.key(keys.active), payload))}"


def verify_token(keys: Keyring, token: str | None, *, shipment_id: str, now_unix: float) -> bool:
    """True only for an authentic, unexpired token naming exactly this shipment.

    Callers learn nothing about which check failed. The MAC is compared (constant time,
    against every key in the ring) before the payload is interpreted at all.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        return False
    encoded_payload, encoded_mac = token.split(".")
    payload = _b64decode_canonical(encoded_payload)
    mac = _b64decode_canonical(encoded_mac)
    if payload is None or mac is None or len(mac) != _MAC_LENGTH:
        return False
    authentic = False
    for key in keys.keys.values():  # no early exit: the same work whichever key matches
        authentic |= hmac.compare_digest(_mac(key, payload), mac)
    if not authentic:
        return False
    try:
        named, expiry = payload.decode("ascii").split("|")
    except (UnicodeDecodeError, ValueError):
        return False
    if not _SHIPMENT_ID.fullmatch(named) or not _EXPIRY.fullmatch(expiry):
        return False
    if not hmac.compare_digest(named.encode(), shipment_id.encode()):
        return False
    return now_unix < int(expiry)


# --------------------------------------------------------------------------- rate limits


@dataclass
class TokenBucket:
    """``capacity`` requests at once, refilled at ``capacity / period`` per second, per key.

    In memory and per process: fine for page views (a restart only forgives a little).
    Bounded: beyond ``max_keys`` the least recently used keys are forgotten (a forgotten key
    starts full again, which only ever lets through what a fresh client would get).
    """

    capacity: int
    period_seconds: float
    max_keys: int = 10_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict, repr=False)

    def take(self, key: str, now: float) -> float:
        """Takes one request for ``key``: 0.0 if allowed, else the seconds until one is."""
        rate = self.capacity / self.period_seconds
        tokens, last = self._buckets.pop(key, (float(self.capacity), now))
        tokens = min(float(self.capacity), tokens + max(now - last, 0.0) * rate)
        if tokens >= 1.0:
            tokens -= 1.0
            wait = 0.0
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[key] = (tokens, max(now, last))
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait


@dataclass(frozen=True)
class ResendPolicy:
    """At most ``max_per_window`` resends per shipment in ``window``, and one per ``min_interval``."""

    max_per_window: int = 3
    window: datetime.timedelta = datetime.timedelta(hours=1)
    min_interval: datetime.timedelta = datetime.timedelta(minutes=5)

    def retry_after(self, previous: Sequence[datetime.datetime], now: datetime.datetime) -> float:
        """0.0 when a resend is allowed now; else the seconds until one is (> 0)."""
        recent = sorted(t for t in previous if t > now - self.window)
        waits = [0.0]
        if recent:
            waits.append((recent[-1] + self.min_interval - now).total_seconds())
        if len(recent) >= self.max_per_window:
            waits.append((recent[-self.max_per_window] + self.window - now).total_seconds())
        wait = max(waits)
        return wait if wait > 0 else 0.0


def retry_after_header(seconds: float) -> str:
    """Retry-After in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


def resend_message_id(stable: str, number: int) -> str:
    """``<otp-…@domain>`` → ``<otp-….resend-N@domain>``: recognisably the same code's email."""
    local, at, domain = stable.strip("<>").partition("@")
    if not at or number < 1:
        raise ValueError("not a Message-ID of the form <local@domain>")
    return f"<{local}.resend-{number}@{domain}>"


# --------------------------------------------------------------------------- the stored record


@dataclass(frozen=True)
class TrackingRecord:
    """The current code of one shipment, as the notifier keeps it: sealed, never in the clear."""

    shipment_id: str
    code_id: str
    day_number: int
    key_id: str
    sealed_blob: str
    order_reference: str
    delivery_date: datetime.date
    delivery_zone: str
    valid_from: datetime.datetime
    valid_until: datetime.datetime
    neighbour_allowed: bool
    recipient_name: str
    recipient_email: str
    recipient_locale: str

    @classmethod
    def from_event(cls, event: OtpIssued) -> TrackingRecord:
        return cls(
            shipment_id=event.shipment_id, code_id=event.code_id, day_number=event.day_number,
            key_id=event.sealed.key_id, sealed_blob=event.sealed.blob,
            order_reference=event.order_reference, delivery_date=event.delivery_date,
            delivery_zone=event.delivery_zone, valid_from=event.valid_from, valid_until=event.valid_until,
            neighbour_allowed=event.neighbour_allowed, recipient_name=event.recipient.name,
            recipient_email=str(event.recipient.email), recipient_locale=event.recipient.locale,
        )

    @classmethod
    def from_row(cls, row: Any) -> TrackingRecord:
        return cls(**{name: row[name] for name in TRACKING_COLUMNS})

    def as_row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in TRACKING_COLUMNS)


TRACKING_COLUMNS = (
    "shipment_id", "code_id", "day_number", "key_id", "sealed_blob", "order_reference", "delivery_date",
    "delivery_zone", "valid_from", "valid_until", "neighbour_allowed", "recipient_name", "recipient_email",
    "recipient_locale",
)  # the fields of TrackingRecord, in order (a unit test holds the two together)

# Newer days only: a redelivered or late older OtpIssued never replaces the current code.
UPSERT_TRACKING_SQL = """
INSERT INTO tracking (shipment_id, code_id, day_number, key_id, sealed_blob, order_reference, delivery_date,
                      delivery_zone, valid_from, valid_until, neighbour_allowed, recipient_name,
                      recipient_email, recipient_locale)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT (shipment_id) DO UPDATE SET
    code_id = EXCLUDED.code_id, day_number = EXCLUDED.day_number, key_id = EXCLUDED.key_id,
    sealed_blob = EXCLUDED.sealed_blob, order_reference = EXCLUDED.order_reference,
    delivery_date = EXCLUDED.delivery_date, delivery_zone = EXCLUDED.delivery_zone,
    valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until,
    neighbour_allowed = EXCLUDED.neighbour_allowed, recipient_name = EXCLUDED.recipient_name,
    recipient_email = EXCLUDED.recipient_email, recipient_locale = EXCLUDED.recipient_locale,
    updated_at = now()
WHERE tracking.day_number < EXCLUDED.day_number
"""
SELECT_TRACKING_SQL = """
SELECT shipment_id, code_id, day_number, key_id, sealed_blob, order_reference, delivery_date, delivery_zone,
       valid_from, valid_until, neighbour_allowed, recipient_name, recipient_email, recipient_locale
FROM tracking WHERE shipment_id = $1
"""


# --------------------------------------------------------------------------- rendering

_PAGE_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Your delivery code",
        "order": "Order",
        "delivery_date": "Delivery date",
        "valid_until": "Valid until",
        "expired": (
            "This code is no longer valid. If your parcel is delivered again, the new code "
            "comes with the redelivery email."
        ),
    },
    "de": {
        "title": "Ihr Zustellcode",
        "order": "Bestellung",
        "delivery_date": "Zustelltag",
        "valid_until": "Gültig bis",
        "expired": (
            "Dieser Code ist nicht mehr gültig. Wird Ihr Paket erneut zugestellt, erhalten "
            "Sie den neuen Code mit der E-Mail zur erneuten Zustellung."
        ),
    },
    "pt": {
        "title": "Seu código de entrega",
        "order": "Pedido",
        "delivery_date": "Data de entrega",
        "valid_until": "Válido até",
        "expired": (
            "Este código não é mais válido. Se o seu pacote for entregue novamente, o novo "
            "código chegará no e-mail da nova entrega."
        ),
    },
}
_HTML_LANG = {"en": "en", "de": "de", "pt": "pt-BR"}
_CODE = re.compile(r"[0-9]{4,12}")


@dataclass(frozen=True)
class TrackingView:
    """What the customer sees; ``code`` is None once the validity has ended."""

    shipment_id: str
    language: str
    order_reference: str
    delivery_date: datetime.date
    delivery_date_text: str
    valid_until: datetime.datetime  # exclusive end, in the delivery zone's local time when known
    valid_until_text: str  # the last valid minute, local time and zone, as the email says it
    zone: str
    expired: bool
    code: str | None
    advice: str
    expired_text: str


def build_view(record: TrackingRecord, code: str | None, now: datetime.datetime) -> TrackingView:
    """The page's content at ``now`` (the service clock). ``code`` is ignored once expired,
    so the caller may pass None then and need not open the sealed code at all."""
    language = _language_for(record.recipient_locale)
    strings = _STRINGS[language]
    zone = _truncate(_clean(record.delivery_zone), 64)
    expired = now >= record.valid_until
    if not expired and (code is None or not _CODE.fullmatch(code)):
        raise ValueError("a valid code needs 4 to 12 digits")
    local_last, zone_label = _last_valid_minute(record.valid_until, zone, language)
    validity = strings["validity"].format(
        time=local_last.strftime("%H:%M"),
        valid_date=_format_date(local_last.date(), language),
        zone_label=zone_label,
    )
    return TrackingView(
        shipment_id=record.shipment_id,
        language=language,
        order_reference=_truncate(_clean(record.order_reference), 64),
        delivery_date=record.delivery_date,
        delivery_date_text=_format_date(record.delivery_date, language),
        valid_until=record.valid_until.astimezone(local_last.tzinfo),
        valid_until_text=validity,
        zone=zone,
        expired=expired,
        code=None if expired else code,
        advice=strings["safety"],
        expired_text=_PAGE_STRINGS[language]["expired"],
    )


_PAGE_STYLE = (
    "body{margin:0;font-family:Arial,Helvetica,sans-serif;color:#222;background:#fff}"
    "main{max-width:600px;margin:0 auto;padding:24px}"
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:8px 16px}dt{font-weight:bold}"
    ".code{display:inline-block;padding:16px 24px;font:bold 32px 'Courier New',monospace;"
    "letter-spacing:6px;background:#f2f4f7;border:1px solid #d0d5dd;border-radius:8px}"
    ".notice{padding:12px 16px;background:#fff8e1;border-left:4px solid #f5a623}"
)


def render_html(view: TrackingView) -> str:
    def e(value: str) -> str:
        return html.escape(value, quote=True)

    page = _PAGE_STRINGS[view.language]
    strings = _STRINGS[view.language]
    if view.code is not None:
        code_block = (
            f"<p>{e(strings['code_label'])}</p>\n"
            f'<p class="code">{e(view.code)}</p>\n'
            f"<p>{e(view.valid_until_text)}</p>\n"
            f'<p class="notice"><strong>{e(view.advice)}</strong></p>\n'
        )
    else:
        code_block = f'<p class="notice">{e(view.expired_text)}</p>\n'
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_HTML_LANG[view.language]}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{e(page['title'])}</title>\n"
        f"<style>{_PAGE_STYLE}</style>\n"
        "</head>\n"
        "<body>\n<main>\n"
        f"<h1>{e(page['title'])}</h1>\n"
        "<dl>\n"
        f"<dt>{e(page['order'])}</dt><dd>{e(view.order_reference)}</dd>\n"
        f"<dt>{e(page['delivery_date'])}</dt><dd>{e(view.delivery_date_text)}</dd>\n"
        f"<dt>{e(page['valid_until'])}</dt><dd>{e(view.valid_until_text)}</dd>\n"
        "</dl>\n"
        f"{code_block}"
        "</main>\n</body>\n</html>\n"
    )


def render_json(view: TrackingView) -> str:
    return json.dumps({
        "shipment_id": view.shipment_id,
        "order_reference": view.order_reference,
        "delivery_date": view.delivery_date.isoformat(),
        "valid_until": view.valid_until.isoformat(),
        "zone": view.zone,
        "status": "expired" if view.expired else "valid",
        "code": view.code,
        "validity": view.valid_until_text,
        "advice": view.advice if not view.expired else view.expired_text,
        "language": view.language,
    }, ensure_ascii=True, separators=(",", ":"))


def wants_json(accept: str | None) -> bool:
    """JSON when the Accept header prefers application/json over text/html; HTML otherwise."""
    if not accept:
        return False
    best = {"application/json": 0.0, "text/html": 0.0}
    for item in accept.split(",")[:32]:
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if media not in best:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0 or math.isnan(quality):
                    quality = 0.0
        best[media] = max(best[media], quality)
    return best["application/json"] > 0 and best["application/json"] > best["text/html"]


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.notifier.tracking issue-token <shipment_id> [--days 14]``."""
    import os
    import time
    from pathlib import Path

    from shared.crypto import load_keyring
    from shared.errors import ConfigurationError

    parser = argparse.ArgumentParser(prog="python -m services.notifier.tracking")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue-token", help="print a tracking token for one shipment")
    issue.add_argument("shipment_id")
    issue.add_argument("--days", type=int, default=14, help="lifetime in days (1 to 365, default 14)")
    args = parser.parse_args(argv)
    if not _SHIPMENT_ID.fullmatch(args.shipment_id):
        parser.error("not a valid shipment id")
    if not 1 <= args.days <= 365:
        parser.error("--days must be between 1 and 365")
    path = os.environ.get("OTP_TRACKING_KEYS_FILE")
    if not path:
        parser.error("OTP_TRACKING_KEYS_FILE is not set")
    try:
        keys = load_keyring(Path(path), "OTP_TRACKING_KEYS_FILE")
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(issue_token(keys, args.shipment_id, int(time.time()) + args.days * 86400))
    return 0


if __name__ == "__main__":
    sys.exit(main())
