"""Creates the project's topics when they are missing (the broker does not auto-create)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

__all__ = ["ensure_topics"]

log = logging.getLogger(__name__)


async def ensure_topics(options: dict[str, object], topics: list[str], partitions: int, attempts: int = 60) -> None:
    delay = 0.25
    for attempt in range(1, attempts + 1):
        admin = AIOKafkaAdminClient(**options)  # type: ignore[arg-type]
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [name for name in topics if name not in existing]
            if missing:
                try:
                    await admin.create_topics(
                        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
                    )
                except TopicAlreadyExistsError:
                    pass  # another instance created it first
            return
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning("broker not ready (%s), retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
        finally:
            await admin.close()
