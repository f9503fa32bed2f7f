"""Generated hostile messages: a seeded mutator over valid envelopes and raw byte junk.

Shared by the unit fuzz test (the codec alone, many cases) and the integration test
(the real consumers, fewer cases), so both see the same kinds of trouble.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from shared.events import Envelope, Receiver, Recipient, SealedCode, ShipmentDispatched, encode
from shared.events.handover import HandoverAttempted

__all__ = ["hostile_messages", "valid_attempt", "valid_dispatch"]


def valid_dispatch(shipment_id: str, zone: str = "America/Sao_Paulo") -> dict[str, Any]:
    event = ShipmentDispatched(
        shipment_id=shipment_id, order_reference="ORD-1", dispatched_at=datetime(2018, 1, 3, 12, tzinfo=UTC),
        delivery_date=date(2018, 1, 5), delivery_zone=zone, goods_value=Decimal("150.00"), currency="BRL",
        carrier="own-fleet", recipient=Recipient(name="Ana", email="ana@customers.example", locale="pt-BR"))
    return json.loads(encode(Envelope.wrap(event, occurred_at=datetime(2018, 1, 3, 12, tzinfo=UTC))))


def valid_attempt(shipment_id: str) -> dict[str, Any]:
    event = HandoverAttempted(
        attempt_id="att-0000000000", shipment_id=shipment_id, courier_id="c-1", terminal_id="t-1",
        entered_code=SealedCode(key_id="dev-1", blob="A" * 40), receiver=Receiver(kind="customer"),
        attempted_at=datetime(2018, 1, 5, 12, tzinfo=UTC))
    return json.loads(encode(Envelope.wrap(event, occurred_at=datetime(2018, 1, 5, 12, tzinfo=UTC))))


_WEIRD_VALUES: list[Any] = [
    None, True, 0, -1, 10**30, 1e308, "", " ", "x" * 5000, "\u0000", "\r\nBcc: victim@example.com",
    "<script>alert(1)</script>", "\ud800".encode("utf-8", "surrogatepass").decode("latin-1"), [], {}, [1, 2],
    {"nested": {"deeper": [None]}}, "NaN", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
    "2018-01-03T12:00:00", "1e9", "-0.01", "ZZZ", "Mars/Olympus", "../../etc/passwd", "DROP TABLE codes;--",
]


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(document, dict):
        for key, value in document.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    target = document
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value


def _mutate(rng: random.Random, template: dict[str, Any]) -> tuple[str, bytes]:
    document = copy.deepcopy(template)
    paths = list(_paths(document))
    kind = rng.choice(["delete", "replace", "extra", "type", "bytes", "truncate", "version", "oversize",
                       "duplicate", "nesting"])
    if kind == "delete":
        _set(document, rng.choice(paths), None, delete=True)
    elif kind in ("replace", "type"):
        _set(document, rng.choice(paths), rng.choice(_WEIRD_VALUES))
    elif kind == "extra":
        target = rng.choice([document, document["payload"]])
        target[rng.choice(["admin", "code", "plaintext", "__proto__", "x"])] = rng.choice(_WEIRD_VALUES)
    elif kind == "version":
        document["schema_version"] = rng.choice([0, 2, 99, -1, "1", 1.5])
    elif kind == "bytes":
        return kind, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300)))
    elif kind == "truncate":
        raw = json.dumps(document).encode()
        return kind, raw[: rng.randint(0, len(raw) - 1)]
    elif kind == "oversize":
        document["payload"]["order_reference"] = "y" * 70000
    elif kind == "duplicate":
        raw = json.dumps(document)
        return kind, raw.replace('"payload":', '"event_type": "Other", "payload":', 1).encode()
    elif kind == "nesting":
        depth = rng.choice([1000, 20000, 32000, 100000])
        return kind, (b"[" * depth) + (b"]" * depth)
    return kind, json.dumps(document, default=str).encode()


def hostile_messages(seed: int, count: int, templates: list[dict[str, Any]]) -> Iterator[tuple[str, bytes]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible fuzzing, not secrecy
    for _ in range(count):
        yield _mutate(rng, rng.choice(templates))
