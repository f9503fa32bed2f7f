"""Upstream fulfilment and the courier gateway, simulated on the shared clock.

Upstream publishes each real order's `ShipmentDispatched` at its hand-off time. At
the door, the courier's terminal publishes `HandoverAttempted` with whatever the
person in front of it says; that person learned the code only from the email in the
SMTP server's Maildir. What happens at each door follows the order's real outcome
and a fixed per-order roll: the customer at home, a neighbour who was told the code,
a mistyped code then the right one, five wrong codes (locked), nobody at home, the old
code tried after a redelivery, a code tried after its day ended.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Literal
from zoneinfo import ZoneInfo

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from demo.mailbox import MailboxReader, ReceivedCode
from demo.orders import OrderPlan
from demo.tap import ObservedEvent
from shared.calendar import end_of_local_day
from shared.clock import Clock
from shared.crypto import Keyring, seal
from shared.events import (
    CourierAssigned,
    Envelope,
    HandoverAttempted,
    HandoverDecided,
    OtpIssued,
    OtpNotRequired,
    Receiver,
    Recipient,
    RedeliveryQueued,
    SealedCode,
    ShipmentDispatched,
    ShipmentReturned,
    Topics,
    attempt_context,
    encode,
)

__all__ = ["AttemptRecord", "Doorstep", "Outcome"]

log = logging.getLogger(__name__)

Outcome = Literal["no_code", "delivered", "returned", "stuck"]


@dataclass(frozen=True)
class AttemptRecord:
    attempt_id: str
    shipment_id: str
    scenario: str
    code_source: str | None  # the code id whose email the code came from, None for a made-up code
    expected: str  # "accepted" or a rejection reason
    sent_wall: float
    decision: HandoverDecided
    decided_wall: float


@dataclass
class Doorstep:
    producer: AIOKafkaProducer
    clock: Clock
    topics: Topics
    attempt_keys: Keyring
    mailbox: MailboxReader
    run_tag: str
    wait_seconds: float = 60.0  # real seconds to wait for any one step before calling a shipment stuck
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    dispatch_wall: dict[str, float] = field(default_factory=dict)
    attempts: list[AttemptRecord] = field(default_factory=list)
    scenarios: Counter[str] = field(default_factory=Counter)
    late_steps: Counter[str] = field(default_factory=Counter)
    _futures: dict[tuple[str, str], asyncio.Future[object]] = field(default_factory=dict)
    _owed: dict[int, datetime] = field(default_factory=dict)  # per pending wait: since when the system owes it
    _wait_numbers: itertools.count[int] = field(default_factory=itertools.count)
    _running: int = 0

    # -- events coming back from the topics and the mailbox -------------------------

    def _future(self, kind: str, key: str) -> asyncio.Future[object]:
        future = self._futures.get((kind, key))
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._futures[(kind, key)] = future
        return future

    def observe(self, observed: ObservedEvent) -> None:
        event = observed.event
        if isinstance(event, OtpIssued):
            self._resolve("code", event.code_id, event)
            if event.day_number == 1:
                self._resolve("first", event.shipment_id, event)
        elif isinstance(event, OtpNotRequired):
            self._resolve("first", event.shipment_id, event)
        elif isinstance(event, RedeliveryQueued):
            self._resolve("next", f"{event.shipment_id}|{event.day_number - 1}", event)
        elif isinstance(event, ShipmentReturned):
            self._resolve("next", f"{event.shipment_id}|{event.days_attempted}", event)
        elif isinstance(event, HandoverDecided):
            self._resolve("decision", event.attempt_id, (event, observed.wall))

    def _resolve(self, kind: str, key: str, value: object) -> None:
        future = self._future(kind, key)
        if not future.done():
            future.set_result(value)

    async def poll_mailbox(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for received in self.mailbox.poll():
                self._resolve("mail", received.code_id, received)
            await asyncio.sleep(0.02)

    async def _wait(self, kind: str, key: str, owed_from: datetime | None = None) -> object:
        """An answer from the system; it is owed from `owed_from` (by default: from now)."""
        future = self._future(kind, key)
        if future.done():
            return future.result()
        with self._owing(owed_from or self.clock.now()):
            return await asyncio.wait_for(asyncio.shield(future), self.wait_seconds)

    @contextmanager
    def _owing(self, since: datetime) -> Iterator[None]:
        """Marks a step the simulation is stuck on until the system (or the broker) answers."""
        number = next(self._wait_numbers)
        self._owed[number] = since.astimezone(UTC)
        try:
            yield
        finally:
            del self._owed[number]

    def owed_since(self) -> list[datetime]:
        """Per pending answer: from when the system owes it (in the future: not yet)."""
        return list(self._owed.values())

    def running(self) -> int:
        return self._running

    async def _send(self, topic: str, value: bytes, key: bytes) -> None:
        """Upstream and the gateway keep trying while the broker is away (the chaos run restarts
        it); until the broker has the event, the simulation is owed it like any answer."""
        backoff = 0.2
        with self._owing(self.clock.now()):
            while True:
                try:
                    await self.producer.send_and_wait(topic, value, key=key)
                    return
                except KafkaError as exc:
                    log.warning("publish to %s failed (%s), retrying", topic, type(exc).__name__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 3.0)

    # -- one shipment, from the warehouse to the door ---------------------------------

    def shipment_id(self, plan: OrderPlan) -> str:
        return f"{self.run_tag}-{plan.order.order_id}"

    async def run_shipment(self, plan: OrderPlan) -> None:
        shipment_id = self.shipment_id(plan)
        self._running += 1
        try:
            self.outcomes[shipment_id] = await self._run(plan, shipment_id)
        except TimeoutError:
            log.warning("shipment %s stuck", shipment_id)
            self.outcomes[shipment_id] = "stuck"
        finally:
            self._running -= 1

    async def _run(self, plan: OrderPlan, shipment_id: str) -> Outcome:
        await self.clock.sleep_until(plan.dispatched_at)
        await self._publish_dispatch(plan, shipment_id)
        first = await self._wait("first", shipment_id)
        if isinstance(first, OtpNotRequired):
            return "no_code"
        assert isinstance(first, OtpIssued)
        issued, previous_code = first, None
        while True:
            mail = await self._wait("mail", issued.code_id)
            assert isinstance(mail, ReceivedCode)
            await self._out_for_delivery(plan, issued)
            at_home = plan.handed_over_on is not None and issued.delivery_date >= plan.handed_over_on
            # An attempt meant to be refused that is accepted all the same hands the parcel
            # over: the run goes on and the report counts the broken rule, instead of
            # waiting for a next day that will never come.
            if at_home:
                if issued.day_number > 1 and previous_code and _roll(plan, "old-code") < 0.3:
                    self.scenarios["old code after redelivery"] += 1
                    old = await self._attempt(plan, issued, previous_code, "old code after redelivery", "superseded",
                                              "customer")
                    if old.outcome == "accepted":
                        return "delivered"
                if await self._at_the_door(plan, issued, mail):
                    return "delivered"
            else:
                self.scenarios["nobody at home"] += 1
                if _roll(plan, f"late-{issued.day_number}") < 0.1:
                    self.scenarios["code tried after its day ended"] += 1
                    late = await self._attempt_after_day_end(plan, issued, mail)
                    if late.outcome == "accepted":
                        return "delivered"
            day_end = end_of_local_day(issued.delivery_date, issued.delivery_zone)
            following = await self._wait("next", f"{shipment_id}|{issued.day_number}", owed_from=day_end)
            if isinstance(following, ShipmentReturned):
                return "returned"
            assert isinstance(following, RedeliveryQueued)
            next_issued = await self._wait("code", f"{shipment_id}.d{following.day_number}")
            assert isinstance(next_issued, OtpIssued)
            issued, previous_code = next_issued, mail

    async def _at_the_door(self, plan: OrderPlan, issued: OtpIssued, mail: ReceivedCode) -> bool:
        roll = _roll(plan, f"door-{issued.day_number}")
        scenario = _door_scenario(roll, plan.neighbour_allowed)
        self.scenarios[scenario] += 1
        if scenario == "neighbour told the code":
            decided = await self._attempt(plan, issued, mail, "neighbour told the code", "accepted", "neighbour")
        elif scenario == "mistyped, then right":
            await self._attempt(plan, issued, None, "mistyped, then right", "wrong_code", "customer")
            decided = await self._attempt(plan, issued, mail, "mistyped, then right", "accepted", "customer")
        elif scenario == "wrong until locked":
            for _ in range(issued.max_attempts):
                await self._attempt(plan, issued, None, "wrong until locked", "wrong_code", "customer")
            final = await self._attempt(plan, issued, mail, "wrong until locked", "locked", "customer")
            return final.outcome == "accepted"
        else:
            decided = await self._attempt(plan, issued, mail, "customer at home", "accepted", "customer")
        return decided.outcome == "accepted"

    async def _attempt_after_day_end(self, plan: OrderPlan, issued: OtpIssued,
                                     mail: ReceivedCode) -> HandoverDecided:
        after_end = end_of_local_day(issued.delivery_date, issued.delivery_zone) + timedelta(seconds=30)
        await self.clock.sleep_until(after_end)
        return await self._attempt(plan, issued, mail, "code tried after its day ended", "expired", "customer",
                                   attempted_at=after_end)

    async def _attempt(
        self,
        plan: OrderPlan,
        issued: OtpIssued,
        told: ReceivedCode | None,
        scenario: str,
        expected: str,
        receiver: Literal["customer", "neighbour"],
        attempted_at: datetime | None = None,
    ) -> HandoverDecided:
        if attempted_at is None:
            attempted_at = await self._door_time(plan, issued)
        code = told.code if told else _wrong_code(_real_code(self.mailbox, issued))
        attempt_id = f"att-{uuid.uuid4().hex}"
        key_id, blob = seal(self.attempt_keys, SecretStr(code), attempt_context(attempt_id, issued.shipment_id))
        event = HandoverAttempted(
            attempt_id=attempt_id, shipment_id=issued.shipment_id, courier_id=_courier(plan),
            terminal_id=_terminal(plan), entered_code=SealedCode(key_id=key_id, blob=blob),
            receiver=Receiver(kind=receiver, name="Neighbour" if receiver == "neighbour" else None),
            attempted_at=attempted_at)
        sent = time.time()
        await self._send(
            self.topics.attempts, encode(Envelope.wrap(event, occurred_at=self.clock.now())),
            key=issued.shipment_id.encode())
        decision, decided_wall = await self._wait("decision", attempt_id)  # type: ignore[misc]
        self.attempts.append(AttemptRecord(
            attempt_id=attempt_id, shipment_id=issued.shipment_id, scenario=scenario,
            code_source=told.code_id if told else None, expected=expected, sent_wall=sent,
            decision=decision, decided_wall=decided_wall))
        return decision

    async def _out_for_delivery(self, plan: OrderPlan, issued: OtpIssued) -> None:
        """The morning's route plan: this courier and terminal carry the parcel today."""
        morning = datetime.combine(issued.delivery_date, clock_time(8), tzinfo=_zone(issued.delivery_zone))
        await self.clock.sleep_until(morning)
        event = CourierAssigned(
            shipment_id=issued.shipment_id, delivery_date=issued.delivery_date, courier_id=_courier(plan),
            terminal_id=_terminal(plan), out_for_delivery_at=min(morning, self.clock.now()))
        await self._send(
            self.topics.attempts, encode(Envelope.wrap(event, occurred_at=self.clock.now())),
            key=issued.shipment_id.encode())

    async def _door_time(self, plan: OrderPlan, issued: OtpIssued) -> datetime:
        """The courier rings between 10:00 and 18:00 local time; late emails push it later."""
        minutes = int(_roll(plan, f"time-{issued.day_number}") * 480)
        local = datetime.combine(issued.delivery_date, clock_time(10), tzinfo=_zone(issued.delivery_zone))
        planned = (local + timedelta(minutes=minutes)).astimezone(UTC)
        now = self.clock.now()
        if planned < now:
            self.late_steps["door visit moved later: the parcel or its email came after the planned time"] += 1
            planned = now
        await self.clock.sleep_until(planned)
        return self.clock.now()

    async def _publish_dispatch(self, plan: OrderPlan, shipment_id: str) -> None:
        order = plan.order
        event = ShipmentDispatched(
            shipment_id=shipment_id,
            order_reference=order.order_id[:12].upper(),
            dispatched_at=plan.dispatched_at,
            delivery_date=plan.first_delivery_date,
            delivery_zone=plan.zone,
            goods_value=order.items_value,
            currency="BRL",
            carrier=plan.carrier,
            recipient=Recipient(
                name=f"Cliente {order.customer_id[:6]}",
                email=f"{order.customer_id}@customers.example",
                locale=plan.locale,
            ),
            neighbour_allowed=plan.neighbour_allowed,
        )
        self.dispatch_wall[shipment_id] = time.time()
        await self._send(
            self.topics.dispatched, encode(Envelope.wrap(event, occurred_at=self.clock.now())),
            key=shipment_id.encode())


def _courier(plan: OrderPlan) -> str:
    """Three couriers per state share its doors."""
    return f"courier-{plan.order.state.lower()}-{int(plan.roll * 3) + 1}"


def _terminal(plan: OrderPlan) -> str:
    return f"terminal-{_courier(plan)}"


def _door_scenario(roll: float, neighbour_allowed: bool) -> str:
    if roll < 0.12 and neighbour_allowed:
        return "neighbour told the code"
    if 0.12 <= roll < 0.22:
        return "mistyped, then right"
    if 0.22 <= roll < 0.24:
        return "wrong until locked"
    return "customer at home"


def _roll(plan: OrderPlan, salt: str) -> float:
    digest = hashlib.sha256(f"{plan.roll}|{plan.order.order_id}|{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _real_code(mailbox: MailboxReader, issued: OtpIssued) -> str:
    received = mailbox.by_code_id.get(issued.code_id)
    return received[0].code if received else "000000"


def _wrong_code(real: str) -> str:
    """A made-up code of the same length that is certainly not the real one."""
    while True:
        guess = f"{secrets.randbelow(10 ** len(real)):0{len(real)}d}"
        if guess != real:
            return guess


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)
