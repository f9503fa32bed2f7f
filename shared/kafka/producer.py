"""The idempotent producer every service uses (through the outbox relay only)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

__all__ = ["create_producer"]


def create_producer(options: dict[str, object], client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **options,  # type: ignore[arg-type]
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        request_timeout_ms=15000,
        retry_backoff_ms=200,
    )
