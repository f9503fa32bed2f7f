"""The main flow on a broker with SASL/SCRAM and ACLs, and what a courier gateway may not do.

A second broker (`stack/kafka_secure.sh`) runs for this test only, beside the normal
stack: SCRAM-SHA-512 on 127.0.0.1:19192, deny by default, ACLs per principal. The four
services get their Kafka credentials from configuration only (`OTP_KAFKA_*`), exactly
as in production; PostgreSQL and SMTP are the normal local stack.

Who may do what (`bash stack/kafka_secure.sh grant <ns>`):

- `services`: everything on topics and groups `<ns>.*`;
- `upstream`: write `<ns>.shipments.dispatched`;
- `gateway`: write `<ns>.handover.attempts`, read `<ns>.handover.decisions` in its
  own groups `<ns>.gateway*`, and nothing else;
- `admin`: super user; creates the topics and watches them all, like operations.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.conn import create_conn
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)

from shared.clock import ScaledClock
from shared.crypto import load_keyring
from shared.events import HandoverDecided, NotificationSent, OtpIssued, Topics, decode
from shared.kafka.admin import ensure_topics
from stack.environment import PROJECT_ROOT
from stack.services import ServiceProcesses
from tests.integration.harness import Probe, namespace_env, zone_with_local_hour

pytestmark = pytest.mark.integration

SCRIPT = PROJECT_ROOT / "stack" / "kafka_secure.sh"
MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class SecureKafka:
    bootstrap: str
    secrets: Path

    def password(self, user: str) -> str:
        return (self.secrets / user).read_text()

    def options(self, user: str, password: str | None = None) -> dict[str, object]:
        """aiokafka client options for one principal: what `kafka_client_options()` builds."""
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": self.password(user) if password is None else password,
        }


def _script(*args: str) -> None:
    subprocess.run(["bash", str(SCRIPT), *args], cwd=PROJECT_ROOT, check=True)  # noqa: S603, S607


@pytest.fixture(scope="session")
def secure_kafka(stack_env: dict[str, str]) -> Iterator[SecureKafka]:
    """The SCRAM broker, started if needed and stopped by the last session that used it.

    Other engineers' `make test` runs this module too, on the same checkout and ports:
    each session holds a shared lock while it uses the broker, and only one that can
    turn it into an exclusive lock (nobody else is using it) stops the broker. A plain
    `bash stack/kafka_secure.sh stop` refuses while any session holds the lock.
    """
    usage = PROJECT_ROOT / ".stack" / "kafka-secure" / "in-use.lock"
    usage.parent.mkdir(parents=True, exist_ok=True)
    with usage.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            _script("start")
            yield SecureKafka(
                bootstrap=f"127.0.0.1:{stack_env.get('OTP_KAFKA_SECURE_PORT', '19192')}",
                secrets=Path(stack_env["OTP_SECRETS_DIR"]) / "kafka-secure",
            )
        finally:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass  # another session still uses it and will stop it
            else:
                _script("stop", "--force")  # we hold the lock alone: nobody else uses it


@pytest.fixture(scope="session")
def secure_topics(secure_kafka: SecureKafka, run_tag: str) -> Topics:
    """A namespace of its own with its ACLs, and its topics created as admin beforehand,
    so that every refusal below is about authorisation, never about a missing topic."""
    topics = Topics(f"sec{run_tag}")
    _script("grant", topics.namespace)
    asyncio.run(ensure_topics(secure_kafka.options("admin"), topics.all_topics(), 6))
    return topics


@pytest.fixture(scope="session")
def secure_services(stack_env: dict[str, str], secure_kafka: SecureKafka, secure_topics: Topics,
                    clock: ScaledClock) -> Iterator[ServiceProcesses]:
    # Like the `services` fixture in conftest.py; only the Kafka settings differ.
    env = {
        **namespace_env(stack_env, secure_topics.namespace, clock),
        "OTP_KAFKA_BOOTSTRAP": secure_kafka.bootstrap,
        "OTP_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "OTP_KAFKA_SASL_MECHANISM": MECHANISM,
        "OTP_KAFKA_USERNAME": "services",
        "OTP_KAFKA_PASSWORD": secure_kafka.password("services"),
    }
    processes = ServiceProcesses(env=env, log_dir=PROJECT_ROOT / ".stack" / "logs" / secure_topics.namespace)
    processes.start()
    try:
        processes.wait_started()
        yield processes
    finally:
        codes = processes.stop()
        unclean = {name: code for name, code in codes.items() if code != 0}
        if unclean and not os.environ.get("OTP_TEST_IGNORE_EXIT"):
            raise AssertionError(f"services did not stop cleanly on SIGTERM: {unclean}")


@dataclass
class PrincipalProbe(Probe):
    """The harness's Probe, watching every topic as admin (operations' view), but
    publishing each topic as the principal that owns it: a publish to a topic without
    one is a test bug and fails with KeyError."""

    publishers: dict[str, AIOKafkaProducer] = field(default_factory=dict)

    async def publish_raw(self, topic: str, value: bytes, key: str) -> None:
        await self.publishers[topic].send_and_wait(topic, value, key=key.encode())


@pytest_asyncio.fixture(scope="session")
async def secure_probe(secure_services: ServiceProcesses, secure_kafka: SecureKafka, secure_topics: Topics,
                       stack_env: dict[str, str], run_tag: str, clock: ScaledClock) -> AsyncIterator[PrincipalProbe]:
    upstream = AIOKafkaProducer(**secure_kafka.options("upstream"), enable_idempotence=True)  # type: ignore[arg-type]
    gateway = AIOKafkaProducer(**secure_kafka.options("gateway"), enable_idempotence=True)  # type: ignore[arg-type]
    probe = PrincipalProbe(
        options=secure_kafka.options("admin"),
        topics=secure_topics,
        clock=clock,
        attempt_keys=load_keyring(Path(stack_env["OTP_ATTEMPT_KEYS_FILE"]), "OTP_ATTEMPT_KEYS_FILE"),
        maildir=Path(stack_env["OTP_MAILDIR"]),
        run_tag=run_tag,
        publishers={secure_topics.dispatched: upstream, secure_topics.attempts: gateway},
    )
    await upstream.start()
    await gateway.start()
    await probe.start()
    try:
        yield probe
    finally:
        await probe.stop()
        await gateway.stop()
        await upstream.stop()


async def _gateway_reads_decision(kafka: SecureKafka, topics: Topics, attempt_id: str) -> HandoverDecided:
    """Reads decisions as the gateway would: its own principal, a group of its own, offsets committed."""
    consumer = AIOKafkaConsumer(
        topics.decisions, **kafka.options("gateway"),  # type: ignore[arg-type]
        group_id=f"{topics.namespace}.gateway.terminals", auto_offset_reset="earliest", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(30):
            while True:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        _, event = decode(record.value)
                        if isinstance(event, HandoverDecided) and event.attempt_id == attempt_id:
                            await consumer.commit()
                            return event
    finally:
        await consumer.stop()


async def test_the_flow_runs_on_scram_with_each_principal_in_its_lane(
        secure_probe: PrincipalProbe, secure_kafka: SecureKafka, secure_topics: Topics):
    probe = secure_probe
    shipment = probe.new_shipment_id()
    zone = zone_with_local_hour(probe.clock.now(), 6, 14)
    await probe.dispatch(shipment, zone=zone)  # as upstream
    issued = await probe.wait_for(lambda o: isinstance(o.event, OtpIssued) and o.event.shipment_id == shipment,
                                  f"OtpIssued for {shipment}")
    mail = await probe.email_for(issued.code_id)
    await probe.wait_for(lambda o: isinstance(o.event, NotificationSent) and o.event.code_id == issued.code_id,
                         "NotificationSent")

    seen_by_ops = await probe.attempt(shipment, mail.code)  # as gateway
    assert seen_by_ops.outcome == "accepted" and seen_by_ops.code_id == issued.code_id
    seen_by_gateway = await _gateway_reads_decision(secure_kafka, secure_topics, seen_by_ops.attempt_id)
    assert seen_by_gateway == seen_by_ops


async def test_the_gateway_cannot_read_issued_codes(secure_kafka: SecureKafka, secure_topics: Topics):
    # Subscribed (a group of its own) or assigned (no group): the topic is refused either way.
    subscribed = AIOKafkaConsumer(
        secure_topics.issuance, **secure_kafka.options("gateway"),  # type: ignore[arg-type]
        group_id=f"{secure_topics.namespace}.gateway.snoop", auto_offset_reset="earliest")
    assigned = AIOKafkaConsumer(**secure_kafka.options("gateway"), group_id=None)  # type: ignore[arg-type]
    assigned.assign([TopicPartition(secure_topics.issuance, 0)])
    for consumer in (subscribed, assigned):
        try:
            with pytest.raises(TopicAuthorizationFailedError, match=secure_topics.issuance):
                await consumer.start()
        finally:
            await consumer.stop()


async def test_the_gateway_cannot_write_dispatches(secure_kafka: SecureKafka, secure_topics: Topics):
    producer = AIOKafkaProducer(**secure_kafka.options("gateway"))  # type: ignore[arg-type]
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError, match=secure_topics.dispatched):
            await producer.send_and_wait(secure_topics.dispatched, b"{}", key=b"forged")
    finally:
        await producer.stop()


async def test_the_gateway_cannot_join_a_services_consumer_group(secure_kafka: SecureKafka, secure_topics: Topics):
    # It could otherwise commit offsets for the verifier and make it skip attempts.
    consumer = AIOKafkaConsumer(
        secure_topics.decisions, **secure_kafka.options("gateway"),  # type: ignore[arg-type]
        group_id=f"{secure_topics.namespace}.verifier", enable_auto_commit=False)
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await consumer.start()
            await consumer.getmany(timeout_ms=5000)
    finally:
        await consumer.stop()


async def test_a_wrong_password_fails_authentication(secure_kafka: SecureKafka):
    host, port = secure_kafka.bootstrap.rsplit(":", 1)

    def connect(password: str):  # one raw connection: it raises the broker's own reason
        return create_conn(host, int(port), security_protocol="SASL_PLAINTEXT", sasl_mechanism=MECHANISM,
                           sasl_plain_username="gateway", sasl_plain_password=password)

    with pytest.raises(SaslAuthenticationFailed, match="invalid credentials"):
        await connect("not-the-password")
    (await connect(secure_kafka.password("gateway"))).close()  # the control: only the password differs
    # What an application sees: its client does not start.
    producer = AIOKafkaProducer(**secure_kafka.options("gateway", password="not-the-password"))  # type: ignore[arg-type]  # noqa: S106
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()
