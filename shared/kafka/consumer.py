"""The one consumer loop: decode strictly, hand to a handler, commit only after it is durable.

Per batch, each partition's messages are handled in order while partitions run side by
side; offsets are committed once the whole batch is done. What goes wrong is sorted
by the exception tree in `shared.errors`:

- `BadEvent` (undecodable, invalid, unknown type or version): to `<topic>.dlq` at once,
  with the original bytes and the reason in headers; the partition moves on.
- connection-type errors (database, broker, SMTP away): retried with backoff and jitter
  for as long as they last, so an outage never dead-letters a valid event.
- anything else: retried `poison_retries` times, then dead-lettered as a poison message.

A message whose type this service does not handle is skipped: topics carry several
event types and each consumer takes its own.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError, MessageSizeTooLargeError, RecordTooLargeError

from shared.errors import BadEvent
from shared.events.envelope import Envelope, Event
from shared.events.registry import decode
from shared.events.topics import Topics
from shared.postgres.pool import CONNECTION_ERRORS

__all__ = ["ConsumerLoop", "ConsumerStats", "Handler"]

log = logging.getLogger(__name__)

Handler = Callable[[Envelope, Event], Awaitable[None]]

MAX_DEAD_LETTER_BYTES = 256 * 1024


@dataclass
class ConsumerStats:
    handled: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    retried: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class ConsumerLoop:
    def __init__(
        self,
        *,
        options: dict[str, object],
        group_id: str,
        topics: list[str],
        handlers: Mapping[str, Handler],
        dead_letter_producer: AIOKafkaProducer,
        service: str,
        batch_size: int = 200,
        poison_retries: int = 3,
        session_timeout_ms: int = 10000,
        topic_kinds: Topics | None = None,
    ) -> None:
        self._session_timeout_ms = session_timeout_ms
        self._topic_kinds = topic_kinds
        self._options = options
        self._group_id = group_id
        self._topics = topics
        self._handlers = handlers
        self._dlq = dead_letter_producer
        self._service = service
        self._batch_size = batch_size
        self._poison_retries = poison_retries
        self.stats = ConsumerStats()

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *self._topics,
            **self._options,  # type: ignore[arg-type]
            group_id=self._group_id,
            client_id=f"{self._service}-{self._group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._batch_size,
            session_timeout_ms=self._session_timeout_ms,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=300000,
        )

    async def run(self, stop: asyncio.Event) -> None:
        consumer = self._consumer()
        await _start_with_retry(consumer)
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self._batch_size)
                if not batch:
                    continue
                results = await asyncio.gather(
                    *(self._handle_partition(records, stop) for records in batch.values())
                )
                offsets = {
                    tp: last + 1 for tp, last in zip(batch.keys(), results, strict=True) if last is not None
                }
                if offsets:
                    await self._commit(consumer, offsets)
        finally:
            try:
                await consumer.stop()
            except (KafkaError, OSError) as exc:  # the broker is away: nothing left to tell it
                log.warning("consumer stop: %s", type(exc).__name__)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions away: the new owner re-reads from the last
            # commit, and every effect is idempotent, so nothing is lost or doubled.
            log.warning("offset commit failed (%s); records will be redelivered", type(exc).__name__)

    async def _handle_partition(self, records: list[ConsumerRecord], stop: asyncio.Event) -> int | None:
        last_done: int | None = None
        for record in records:
            finished = await self._handle_record(record, stop)
            if not finished:
                break
            last_done = record.offset
        return last_done

    async def _handle_record(self, record: ConsumerRecord, stop: asyncio.Event) -> bool:
        """True once the record is settled (handled, skipped or dead-lettered)."""
        try:
            allowed = self._topic_kinds.event_types(record.topic) if self._topic_kinds else None
            envelope, event = decode(record.value, allowed)
            if record.key is not None and record.key != envelope.key.encode():
                raise BadEvent("key_mismatch", "the Kafka key is not the envelope's key")
        except BadEvent as bad:
            await self._dead_letter(record, bad.reason, bad.detail, attempts=1)
            return True
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            self.stats.skipped += 1
            return True
        failures = 0
        backoff = 0.1
        while True:
            try:
                await handler(envelope, event)
                self.stats.handled += 1
                return True
            except BadEvent as bad:
                await self._dead_letter(record, bad.reason, bad.detail, attempts=failures + 1)
                return True
            except CONNECTION_ERRORS as exc:
                self.stats.retried += 1
                log.warning("%s: dependency unavailable (%s: %s), retrying", envelope.event_type,
                            type(exc).__name__, str(exc)[:200])
            except Exception as exc:  # a poison message must not block its partition forever
                failures += 1
                self.stats.retried += 1
                log.exception("%s %s failed (%d/%d)", envelope.event_type, envelope.event_id, failures,
                              self._poison_retries)
                if failures > self._poison_retries:
                    await self._dead_letter(record, "handler_failed", type(exc).__name__, attempts=failures)
                    return True
            if stop.is_set():
                return False
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter only
            backoff = min(backoff * 2, 5.0)

    async def _dead_letter(self, record: ConsumerRecord, reason: str, detail: str, attempts: int) -> None:
        self.stats.dead_lettered += 1
        self.stats.by_reason[reason] = self.stats.by_reason.get(reason, 0) + 1
        headers = [
            ("dlq-reason", reason.encode()),
            ("dlq-detail", detail.encode()[:500]),
            ("dlq-service", self._service.encode()),
            ("dlq-source-topic", record.topic.encode()),
            ("dlq-source-partition", str(record.partition).encode()),
            ("dlq-source-offset", str(record.offset).encode()),
            ("dlq-attempts", str(attempts).encode()),
        ]
        # A replayed dead letter that fails again keeps the trail back to its first failure.
        headers += [(name, value) for name, value in (record.headers or []) if name == "dlq-replayed-from"]
        log.warning("dead-lettered %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason)
        value = record.value
        if value is not None and len(value) > MAX_DEAD_LETTER_BYTES:
            # Too big to publish again: keep where it is, not what it is.
            headers.append(("dlq-original-bytes", str(len(value)).encode()))
            value = None
        backoff = 0.2
        while True:
            try:
                await self._dlq.send_and_wait(Topics.dead_letters(record.topic), value=value, key=record.key,
                                              headers=headers)
                return
            except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
                log.warning("dead letter too large for the broker (%s): publishing it without its value",
                            type(exc).__name__)
                headers.append(("dlq-original-bytes", str(len(value or b"")).encode()))
                value = None
            except KafkaError as exc:
                log.warning("dead-letter publish failed (%s), retrying", type(exc).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


async def _start_with_retry(consumer: AIOKafkaConsumer, attempts: int = 60) -> None:
    delay = 0.25
    for attempt in range(1, attempts + 1):
        try:
            await consumer.start()
            return
        except (KafkaError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning("consumer cannot start (%s), retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
