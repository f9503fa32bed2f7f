"""What every service's `main` wires: pool, schema, producer, outbox relay, consumers.

    async with ServiceRuntime.open("issuer", settings, MIGRATIONS) as runtime:
        runtime.consume("issuer", [topics.dispatched], handlers)
        await runtime.run()

`run` returns after SIGTERM or SIGINT: consumers finish the batch in flight and commit,
then the relay drains what those batches wrote, then resources close in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from shared.clock import Clock
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.consumer import ConsumerLoop, Handler
from shared.kafka.producer import create_producer
from shared.postgres.migrations import RUNTIME_MIGRATIONS, apply_migrations
from shared.postgres.outbox import OutboxRelay
from shared.postgres.pool import create_pool
from shared.postgres.unit_of_work import UnitOfWorkFactory, unit_of_work_factory
from shared.settings import RuntimeSettings

__all__ = ["ServiceRuntime"]

log = logging.getLogger(__name__)


@dataclass
class ServiceRuntime:
    service: str
    settings: RuntimeSettings
    topics: Topics
    clock: Clock
    pool: asyncpg.Pool
    producer: AIOKafkaProducer
    relay: OutboxRelay
    unit_of_work: UnitOfWorkFactory
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    consumers: list[ConsumerLoop] = field(default_factory=list)
    background: list[Callable[[asyncio.Event], Coroutine[None, None, None]]] = field(default_factory=list)

    @classmethod
    @asynccontextmanager
    async def open(
        cls, service: str, settings: RuntimeSettings, migrations: Path
    ) -> AsyncIterator[ServiceRuntime]:
        # Signals count from the very start: a SIGTERM during start-up ends the service cleanly.
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        topics = Topics(settings.namespace)
        schema = f"{settings.namespace}_{service}"
        options = settings.kafka_client_options()
        async with AsyncExitStack() as resources:
            await ensure_topics(options, topics.all_topics(), settings.partitions)
            pool = await create_pool(settings.pg_dsn.get_secret_value(), schema, settings.pg_pool_max)
            resources.push_async_callback(pool.close)
            async with pool.acquire() as conn:
                applied = await apply_migrations(
                    conn, schema, {"runtime": RUNTIME_MIGRATIONS, service: migrations}
                )
            if applied:
                log.info("applied migrations %s", ", ".join(applied))
            producer = create_producer(options, client_id=service)
            await producer.start()
            resources.push_async_callback(producer.stop)
            relay = OutboxRelay(pool, producer, schema)
            yield cls(
                service=service,
                settings=settings,
                topics=topics,
                clock=settings.build_clock(),
                pool=pool,
                producer=producer,
                relay=relay,
                unit_of_work=unit_of_work_factory(pool, relay.wake),
                stop=stop,
            )

    def consume(self, group: str, topics: list[str], handlers: Mapping[str, Handler]) -> ConsumerLoop:
        loop = ConsumerLoop(
            options=self.settings.kafka_client_options(),
            group_id=f"{self.settings.namespace}.{group}",
            topics=topics,
            handlers=handlers,
            dead_letter_producer=self.producer,
            service=self.service,
            batch_size=self.settings.consumer_batch,
            session_timeout_ms=self.settings.consumer_session_timeout_ms,
            topic_kinds=self.topics,
        )
        self.consumers.append(loop)
        return loop

    def add_task(self, task: Callable[[asyncio.Event], Coroutine[None, None, None]]) -> None:
        self.background.append(task)

    async def run(self) -> None:
        relay_stop = asyncio.Event()
        log.info("%s started", self.service)
        async with asyncio.TaskGroup() as group:
            relay_task = group.create_task(self.relay.run(relay_stop))
            workers = [group.create_task(consumer.run(self.stop)) for consumer in self.consumers]
            workers += [group.create_task(task(self.stop)) for task in self.background]
            await self.stop.wait()
            log.info("%s stopping: finishing the batch in flight", self.service)
            await asyncio.gather(*workers)
            relay_stop.set()
            self.relay.wake()
            await relay_task
        log.info("%s stopped", self.service)
