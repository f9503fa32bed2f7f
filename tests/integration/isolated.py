"""A system of its own for one test: a fresh namespace, its own service processes, its own probe.

The session's `services` fixture shares one set of processes between all tests. Tests that
kill a process on purpose (crash points, SIGTERM under load) or replay a namespace's dead
letters need processes and topics nobody else uses; `isolated_system` starts them with
the session's environment pattern (see `conftest.services`) plus any extra variables.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.clock import ScaledClock
from shared.crypto import load_keyring
from shared.events import Topics
from shared.kafka.admin import ensure_topics
from stack.environment import PROJECT_ROOT
from stack.services import SERVICES, ServiceProcesses
from tests.integration.harness import Probe, namespace_env

__all__ = ["IsolatedSystem", "RawRecord", "RawTap", "isolated_system", "namespace_env"]

PARTITIONS = 6


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    def document(self) -> dict[str, Any]:
        assert self.value is not None
        parsed: dict[str, Any] = json.loads(self.value)
        return parsed


@dataclass
class RawTap:
    """Every record of some topics as the broker holds it: no decoding, no dedup by event id."""

    options: dict[str, object]
    topics: list[str]
    records: list[RawRecord] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(**self.options, group_id=None, enable_auto_commit=False,  # type: ignore[arg-type]
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topic, p) for topic in self.topics for p in range(PARTITIONS)])
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=2000)
                for records in batch.values():
                    self.records += [
                        RawRecord(r.topic, r.partition, r.offset, r.key, r.value,
                                  {k: bytes(v).decode(errors="replace") for k, v in r.headers or ()})
                        for r in records
                    ]
        finally:
            await consumer.stop()

    def where(self, topic: str, predicate: Callable[[RawRecord], bool] = lambda _: True) -> list[RawRecord]:
        return [record for record in self.records if record.topic == topic and predicate(record)]


@dataclass
class IsolatedSystem:
    namespace: str
    env: dict[str, str]
    processes: ServiceProcesses
    probe: Probe
    raw: RawTap
    dsn: str

    @property
    def topics(self) -> Topics:
        return self.probe.topics

    def log(self, name: str) -> str:
        return (self.processes.log_dir / f"{name}.log").read_text(errors="replace")

    async def wait_exit(self, name: str, timeout: float = 30.0) -> int:
        process = self.processes.processes[name]
        deadline = time.monotonic() + timeout
        while process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} still runs after {timeout}s:\n{self.log(name)[-3000:]}")
            await asyncio.sleep(0.02)
        return process.returncode

    async def restart(self, service: str, number: int = 1, timeout: float = 60.0) -> None:
        """Starts the instance again and waits for its own ' started' line (the log file is appended to)."""
        process = self.processes.start_instance(service, number)
        name = f"{service}-{number}"
        deadline = time.monotonic() + timeout
        while not any(f"[{process.pid}]" in line and line.endswith(" started") for line in self.log(name).splitlines()):
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.log(name)[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not started after {timeout}s")
            await asyncio.sleep(0.05)

    async def fetch(self, service: str, sql: str, *args: object) -> list[asyncpg.Record]:
        """A query in the service's schema (`<namespace>_<service>`)."""
        conn = await asyncpg.connect(self.dsn, server_settings={"search_path": f"{self.namespace}_{service}"})
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    async def committed_offsets(self, group: str) -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(**self.probe.options)  # type: ignore[arg-type]
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(f"{self.namespace}.{group}")
        finally:
            await admin.close()
        return {tp: meta.offset for tp, meta in offsets.items()}


@asynccontextmanager
async def isolated_system(
    stack_env: dict[str, str], clock: ScaledClock, *, prefix: str, extra_env: dict[str, str] | None = None,
    services: tuple[str, ...] = SERVICES,
) -> AsyncIterator[IsolatedSystem]:
    """Starts `services` (one instance each) in a fresh namespace; on exit, stops them and
    checks that each one that still ran stopped with 0 on SIGTERM."""
    namespace = f"{prefix}{secrets.token_hex(3)}"
    env = {**namespace_env(stack_env, namespace, clock), **(extra_env or {})}
    options: dict[str, object] = {"bootstrap_servers": stack_env["OTP_KAFKA_BOOTSTRAP"]}
    topics = Topics(namespace)
    await ensure_topics(options, topics.all_topics(), PARTITIONS)
    processes = ServiceProcesses(env=env, log_dir=PROJECT_ROOT / ".stack" / "logs" / namespace, instances=1)
    probe = Probe(
        options=options, topics=topics, clock=clock,
        attempt_keys=load_keyring(Path(stack_env["OTP_ATTEMPT_KEYS_FILE"]), "OTP_ATTEMPT_KEYS_FILE"),
        maildir=Path(stack_env["OTP_MAILDIR"]), run_tag=namespace,
    )
    raw = RawTap(options, topics.all_topics())
    stop_raw = asyncio.Event()
    raw_task: asyncio.Task[None] | None = None
    clean = False
    try:
        processes.start(services)
        await asyncio.to_thread(processes.wait_started)
        await probe.start()
        raw_task = asyncio.create_task(raw.run(stop_raw))
        yield IsolatedSystem(namespace, env, processes, probe, raw, stack_env["OTP_PG_DSN"])
        clean = True
    finally:
        running = processes.alive()
        codes = await asyncio.to_thread(processes.stop)
        stop_raw.set()
        if raw_task is not None:
            await raw_task
        await probe.stop()
    unclean = {name: code for name, code in codes.items() if name in running and code != 0}
    if clean and unclean:
        raise AssertionError(f"services did not stop cleanly on SIGTERM: {unclean}")
