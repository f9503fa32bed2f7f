"""Reads every topic of one run, for the courier simulation and the final report."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from shared.errors import BadEvent
from shared.events import Envelope, Event, Topics, decode

__all__ = ["ObservedEvent", "TopicTap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObservedEvent:
    topic: str
    envelope: Envelope
    event: Event
    wall: float


@dataclass
class TopicTap:
    options: dict[str, object]
    topics: Topics
    events: list[ObservedEvent] = field(default_factory=list)
    dead_letters: list[tuple[str, dict[str, str], bytes | None]] = field(default_factory=list)
    undecodable: int = 0
    listeners: list[Callable[[ObservedEvent], None]] = field(default_factory=list)
    _seen: set[object] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self.topics.all_topics(),
            **self.options,  # type: ignore[arg-type]
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            while not stop.is_set():
                try:
                    batch = await consumer.getmany(timeout_ms=100, max_records=2000)
                except KafkaError as exc:  # the chaos run restarts the broker: keep reading
                    log.warning("tap: fetch failed (%s), retrying", type(exc).__name__)
                    await asyncio.sleep(0.5)
                    continue
                now = time.time()
                for records in batch.values():
                    for record in records:
                        self._take(record.topic, record.key, record.value, record.headers, now)
        finally:
            await consumer.stop()

    def _take(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]],
              now: float) -> None:
        if topic.endswith(".dlq"):
            self.dead_letters.append((topic, {k: v.decode(errors="replace") for k, v in headers}, key))
            return
        try:
            envelope, event = decode(value)
        except BadEvent:
            self.undecodable += 1
            return
        if envelope.event_id in self._seen:
            return  # a re-published outbox row: the same event, seen once
        self._seen.add(envelope.event_id)
        observed = ObservedEvent(topic, envelope, event, now)
        self.events.append(observed)
        for listener in self.listeners:
            listener(observed)

    def of_type(self, model: type[Event]) -> list[ObservedEvent]:
        return [item for item in self.events if isinstance(item.event, model)]
