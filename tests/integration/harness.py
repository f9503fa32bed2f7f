"""A test's hands on the running system: publish like upstream and a courier gateway,
watch every topic, read the customer's mailbox."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from demo.mailbox import MailboxReader, ReceivedCode
from demo.tap import ObservedEvent, TopicTap
from shared.calendar import end_of_local_day
from shared.clock import ScaledClock
from shared.crypto import Keyring, seal
from shared.events import (
    CourierAssigned,
    Envelope,
    HandoverAttempted,
    HandoverDecided,
    OtpIssued,
    Receiver,
    Recipient,
    SealedCode,
    ShipmentDispatched,
    Topics,
    attempt_context,
    encode,
)

__all__ = ["Probe", "namespace_env", "zone_with_local_hour"]


def namespace_env(stack_env: dict[str, str], namespace: str, clock: ScaledClock) -> dict[str, str]:
    """The services' settings for the integration tier: fast clock, small limits, one namespace."""
    return {
        **stack_env,
        "OTP_NAMESPACE": namespace,
        "OTP_CLOCK_START": clock.start.isoformat(),
        "OTP_CLOCK_ANCHOR_UNIX": repr(clock.anchor_unix),
        "OTP_CLOCK_SPEED": repr(clock.speed),
        "OTP_ISSUER_THRESHOLDS": json.dumps({"BRL": "100.00", "EUR": "50.00"}),
        "OTP_ISSUER_CODE_CARRIERS": "own-fleet",
        "OTP_ISSUER_MAX_DELIVERY_DAYS": "3",
        "OTP_ISSUER_DELIVERY_WEEKDAYS": "mon,tue,wed,thu,fri,sat,sun",
        "OTP_SCHEDULER_TICK_SECONDS": "0.05",
        "OTP_VERIFIER_MAX_ATTEMPT_LAG_SECONDS": "1800",
        "OTP_VERIFIER_PARK_SECONDS": "3",
        "OTP_NOTIFIER_DEFER_BASE_SECONDS": "0.5",
        "OTP_NOTIFIER_DEFER_MAX_SECONDS": "2",
    }


def zone_with_local_hour(now: datetime, low: float, high: float) -> str:
    """A fixed-offset IANA zone where the local time is now between low and high hours."""
    for offset in range(-12, 15):
        name = f"Etc/GMT{'+' if offset <= 0 else '-'}{abs(offset)}" if offset else "Etc/GMT"
        local = now.astimezone(ZoneInfo(name))
        hour = local.hour + local.minute / 60
        if low <= hour < high:
            return name
    raise LookupError(f"no fixed-offset zone has local time in [{low}, {high})")


@dataclass
class Probe:
    options: dict[str, object]
    topics: Topics
    clock: ScaledClock
    attempt_keys: Keyring
    maildir: Path
    run_tag: str
    tap: TopicTap = field(init=False)
    mailbox: MailboxReader = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _producer: AIOKafkaProducer | None = None
    _assigned: set[tuple[str, date, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.tap = TopicTap(self.options, self.topics)
        self.mailbox = MailboxReader(self.maildir, code_id_prefix=f"{self.run_tag}-")

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self.options, enable_idempotence=True)  # type: ignore[arg-type]
        await self._producer.start()
        self._tasks.append(asyncio.create_task(self.tap.run(self._stop)))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._producer:
            await self._producer.stop()

    def new_shipment_id(self) -> str:
        return f"{self.run_tag}-{secrets.token_hex(6)}"

    async def publish_raw(self, topic: str, value: bytes, key: str) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(topic, value, key=key.encode())

    async def dispatch(self, shipment_id: str, *, zone: str, value: str = "250.00", currency: str = "BRL",
                       carrier: str = "own-fleet", delivery_date: date | None = None,
                       neighbour_allowed: bool = True, locale: str = "de-DE") -> ShipmentDispatched:
        now = self.clock.now()
        event = ShipmentDispatched(
            shipment_id=shipment_id, order_reference=shipment_id[-12:].upper(), dispatched_at=now,
            delivery_date=delivery_date or now.astimezone(ZoneInfo(zone)).date(), delivery_zone=zone,
            goods_value=Decimal(value), currency=currency, carrier=carrier,
            recipient=Recipient(name="Erika Muster", email=f"{shipment_id}@customers.example", locale=locale),
            neighbour_allowed=neighbour_allowed)
        await self.publish_raw(self.topics.dispatched, encode(Envelope.wrap(event, occurred_at=now)), shipment_id)
        return event

    async def assign(self, shipment_id: str, courier_id: str = "courier-7", terminal_id: str = "t-1") -> None:
        """Puts the parcel on the courier's route for the day of its newest code."""
        newest = max(self.events_for(shipment_id, OtpIssued), key=lambda e: e.day_number, default=None)
        if newest is None or (shipment_id, newest.delivery_date, courier_id) in self._assigned:
            return
        self._assigned.add((shipment_id, newest.delivery_date, courier_id))
        event = CourierAssigned(shipment_id=shipment_id, delivery_date=newest.delivery_date, courier_id=courier_id,
                                terminal_id=terminal_id, out_for_delivery_at=self.clock.now() - timedelta(minutes=5))
        await self.publish_raw(self.topics.attempts, encode(Envelope.wrap(event, occurred_at=self.clock.now())),
                               shipment_id)

    async def attempt(self, shipment_id: str, code: str, *, receiver: Literal["customer", "neighbour"] = "customer",
                      attempt_id: str | None = None, attempted_at: datetime | None = None,
                      courier_id: str = "courier-7", terminal_id: str = "t-1",
                      assign: bool = True) -> HandoverDecided:
        if assign:
            await self.assign(shipment_id, courier_id, terminal_id)
        attempt_id = attempt_id or f"att-{uuid.uuid4().hex}"
        key_id, blob = seal(self.attempt_keys, SecretStr(code), attempt_context(attempt_id, shipment_id))
        event = HandoverAttempted(
            attempt_id=attempt_id, shipment_id=shipment_id, courier_id=courier_id, terminal_id=terminal_id,
            entered_code=SealedCode(key_id=key_id, blob=blob),
            receiver=Receiver(kind=receiver, name="Nachbarin" if receiver == "neighbour" else None),
            attempted_at=attempted_at or self.clock.now())
        seen = len(self.decisions(attempt_id))
        envelope = Envelope.wrap(event, occurred_at=self.clock.now())
        await self.publish_raw(self.topics.attempts, encode(envelope), shipment_id)
        await self.wait_until(lambda: len(self.decisions(attempt_id)) > seen, f"a decision for {attempt_id}")
        return self.decisions(attempt_id)[-1]

    def decisions(self, attempt_id: str) -> list[HandoverDecided]:
        return [o.event for o in self.tap.events
                if isinstance(o.event, HandoverDecided) and o.event.attempt_id == attempt_id]

    def events_for(self, shipment_id: str, model: type[Any] | None = None) -> list[Any]:
        return [o.event for o in self.tap.events if getattr(o.event, "shipment_id", None) == shipment_id
                and (model is None or isinstance(o.event, model))]

    async def wait_for(self, predicate: Callable[[ObservedEvent], bool], what: str, timeout: float = 30.0) -> Any:
        await self.wait_until(lambda: any(predicate(o) for o in self.tap.events), what, timeout)
        return next(o.event for o in self.tap.events if predicate(o))

    async def wait_until(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.05)

    async def email_for(self, code_id: str, timeout: float = 30.0) -> ReceivedCode:
        def arrived() -> bool:
            self.mailbox.poll()
            return code_id in self.mailbox.by_code_id
        await self.wait_until(arrived, f"the email for {code_id}", timeout)
        return self.mailbox.by_code_id[code_id][0]

    def seconds_until_day_end(self, day: date, zone: str) -> float:
        return self.clock.wall_seconds(end_of_local_day(day, zone) - self.clock.now())

    def sim(self, **delta: float) -> timedelta:
        return timedelta(**delta)
