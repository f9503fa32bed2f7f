"""Replays dead letters: puts the original bytes of `<ns>.<topic>.dlq` back on their source topic.

    python -m shared.kafka.replay --namespace otp --topic shipments.dispatched \\
        [--reason unsupported_version] [--dry-run]

For when the cause of a dead letter is fixed (a consumer that learned a new schema
version, a handler bug that made a message poison). It reads the dead-letter topic with
a consumer group of its own, `<ns>.dlq-replay.<topic>`, from the group's committed
offset up to the end the topic had when the run started, and for each record:

- with `--reason`, skips records whose `dlq-reason` header is another one;
- otherwise publishes the original value and key, unchanged, to the topic named in its
  `dlq-source-topic` header (which must be one of the namespace's main topics), with a
  header `dlq-replayed-from: <dlq topic>:<partition>:<offset>`;
- commits the group's offset once the broker has acknowledged the batch's publishes.

So each dead letter is republished once per group: a second run starts where the first
stopped. Skipped records are committed too: to replay them later, reset the group's
offsets (`kafka-consumer-groups.sh --reset-offsets`) or use a filter on the first run.
A crash between the acknowledgement and the offset commit republishes that batch
again on the next run; the republished bytes carry the original event id, so a consumer
that handled the first copy drops the second at its inbox.

A message that fails again is dead-lettered again by its consumer, as a new record;
its `dlq-source-offset` points at the replayed copy, whose `dlq-replayed-from` header
points back at the dead letter it came from.

The partitions are assigned directly (no group membership, so no rebalance wait):
run one replay per topic at a time. `--dry-run` counts without publishing or committing.
Broker settings come from the same `OTP_KAFKA_*` variables as the services'.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from shared.events.topics import Topics
from shared.kafka.producer import create_producer
from shared.settings import RuntimeSettings

__all__ = ["ReplayReport", "ReplaySettings", "main", "replay_dead_letters"]

REPLAYED_FROM = "dlq-replayed-from"


class ReplaySettings(RuntimeSettings):
    """The services' broker settings; the tool needs no database."""

    pg_dsn: SecretStr | None = None  # type: ignore[assignment]


@dataclass
class ReplayReport:
    dead_letter_topic: str
    group_id: str
    dry_run: bool
    read: int = 0
    replayed: int = 0
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    replayed_by_source: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        verb = "would replay" if self.dry_run else "replayed"
        lines = [
            f"{self.dead_letter_topic} (group {self.group_id}{', dry run' if self.dry_run else ''})",
            f"  {'read':<13}{self.read}",
            f"  {verb:<13}{self.replayed}",
        ]
        lines += [f"    to {topic}: {count}" for topic, count in sorted(self.replayed_by_source.items())]
        lines.append(f"  {'skipped':<13}{sum(self.skipped_by_reason.values())}")
        lines += [f"    {reason}: {count}" for reason, count in sorted(self.skipped_by_reason.items())]
        return lines


def _header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace")
    return None


async def replay_dead_letters(
    options: dict[str, object], namespace: str, topic: str, *, reason: str | None = None, dry_run: bool = False
) -> ReplayReport:
    topics = Topics(namespace)
    source = f"{namespace}.{topic}"
    if source not in topics.main_topics():
        names = ", ".join(t.removeprefix(f"{namespace}.") for t in topics.main_topics())
        raise ValueError(f"{topic!r} is not one of the main topics: {names}")
    dead_letters = Topics.dead_letters(source)
    report = ReplayReport(dead_letters, f"{namespace}.dlq-replay.{topic}", dry_run)
    consumer = AIOKafkaConsumer(
        **options,  # type: ignore[arg-type]
        group_id=report.group_id,
        client_id="dlq-replay",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = create_producer(options, client_id="dlq-replay")
    async with AsyncExitStack() as resources:
        await consumer.start()
        resources.push_async_callback(consumer.stop)
        await producer.start()
        resources.push_async_callback(producer.stop)
        if dead_letters not in await consumer.topics():
            raise ValueError(f"topic {dead_letters} does not exist")
        partitions = [TopicPartition(dead_letters, p) for p in sorted(await producer.partitions_for(dead_letters))]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)  # this run stops at the end the topic has now
        pending = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000, max_records=500)
            deliveries: list[asyncio.Future[object]] = []
            offsets: dict[TopicPartition, int] = {}
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    report.read += 1
                    offsets[tp] = record.offset + 1
                    delivery = await _replay_one(producer, topics, record, reason, dry_run, report)
                    if delivery is not None:
                        deliveries.append(delivery)
            await asyncio.gather(*deliveries)  # acknowledged by the broker: only now commit
            if offsets and not dry_run:
                await consumer.commit(offsets)
            pending = [tp for tp in pending if await consumer.position(tp) < ends[tp]]
    return report


async def _replay_one(producer: AIOKafkaProducer, topics: Topics, record: ConsumerRecord, reason: str | None,
                      dry_run: bool, report: ReplayReport) -> asyncio.Future[object] | None:
    """Sends one dead letter back (the returned future resolves on the broker's ack), or counts its skip."""
    record_reason = _header(record, "dlq-reason") or "(none)"
    if reason is not None and record_reason != reason:
        report.skipped_by_reason[record_reason] += 1
        return None
    source = _header(record, "dlq-source-topic")
    if source is None or source not in topics.main_topics():
        report.skipped_by_reason["no_known_source_topic"] += 1
        return None
    report.replayed += 1
    report.replayed_by_source[source] += 1
    if dry_run:
        return None
    origin = f"{record.topic}:{record.partition}:{record.offset}"
    delivery: asyncio.Future[object] = await producer.send(
        source, value=record.value, key=record.key, headers=[(REPLAYED_FROM, origin.encode())])
    return delivery


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.kafka.replay", description=__doc__.split("\n")[0])
    parser.add_argument("--namespace", required=True, help="the topics' prefix, e.g. otp")
    parser.add_argument("--topic", required=True, help="the main topic without prefix, e.g. shipments.dispatched")
    parser.add_argument("--reason", help="replay only dead letters with this dlq-reason header")
    parser.add_argument("--dry-run", action="store_true", help="count only: publish and commit nothing")
    args = parser.parse_args(argv)
    settings = ReplaySettings(namespace=args.namespace)
    try:
        report = asyncio.run(replay_dead_letters(settings.kafka_client_options(), args.namespace, args.topic,
                                                 reason=args.reason, dry_run=args.dry_run))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(report.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
