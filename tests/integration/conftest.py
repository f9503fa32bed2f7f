"""The integration tier: the real broker, database and SMTP server, and the real services.

One session starts the four services as processes in a namespace of their own (topics
and schemas named after it), on a shared clock running 600 times faster than wall
time so that a delivery day can end during a test. Each test uses fresh shipment ids.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from shared.clock import ScaledClock
from shared.crypto import load_keyring
from shared.events import Topics
from shared.kafka.admin import ensure_topics
from stack.environment import PROJECT_ROOT, stack_environment
from stack.services import ServiceProcesses
from tests.integration.harness import Probe, namespace_env

SPEED = 600.0


def _listening(port: str) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", int(port))) == 0


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The running local stack, started here when it is not up yet (idempotent)."""
    env = stack_environment()
    ports = {"Kafka": env["OTP_KAFKA_PORT"], "PostgreSQL": env["OTP_PG_PORT"], "SMTP": env["OTP_SMTP_PORT"]}
    if not all(_listening(port) for port in ports.values()):
        subprocess.run(["bash", "stack/stack.sh", "up"], cwd=PROJECT_ROOT, check=True)  # noqa: S603, S607
    for name, port in ports.items():
        if not _listening(port):
            pytest.fail(f"{name} is not listening on 127.0.0.1:{port} after `bash stack/stack.sh up`")
    return env


@pytest.fixture(scope="session")
def run_tag() -> str:
    return secrets.token_hex(3)


@pytest.fixture(scope="session")
def clock() -> ScaledClock:
    return ScaledClock(datetime.now(UTC), time.time(), SPEED)


@pytest.fixture(scope="session")
def services(stack_env: dict[str, str], run_tag: str, clock: ScaledClock) -> Iterator[ServiceProcesses]:
    namespace = f"it{run_tag}"
    env = namespace_env(stack_env, namespace, clock)
    asyncio.run(ensure_topics({"bootstrap_servers": env["OTP_KAFKA_BOOTSTRAP"]}, Topics(namespace).all_topics(), 6))
    processes = ServiceProcesses(env=env, log_dir=PROJECT_ROOT / ".stack" / "logs" / namespace, instances=1)
    processes.start()
    try:
        processes.wait_started()
        yield processes
    finally:
        codes = processes.stop()
        unclean = {name: code for name, code in codes.items() if code != 0}
        if unclean and not os.environ.get("OTP_TEST_IGNORE_EXIT"):
            raise AssertionError(f"services did not stop cleanly on SIGTERM: {unclean}")


@pytest_asyncio.fixture(scope="session")
async def probe(services: ServiceProcesses, stack_env: dict[str, str], run_tag: str,
                clock: ScaledClock) -> AsyncIterator[Probe]:
    probe = Probe(
        options={"bootstrap_servers": stack_env["OTP_KAFKA_BOOTSTRAP"]},
        topics=Topics(services.env["OTP_NAMESPACE"]),
        clock=clock,
        attempt_keys=load_keyring(Path(stack_env["OTP_ATTEMPT_KEYS_FILE"]), "OTP_ATTEMPT_KEYS_FILE"),
        maildir=Path(stack_env["OTP_MAILDIR"]),
        run_tag=run_tag,
    )
    await probe.start()
    yield probe
    await probe.stop()
