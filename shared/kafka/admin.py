"""Creates the project's topics when they are missing (the broker does not auto-create)."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    for_code,
)

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
                response = await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
                # Errors come back per topic rather than raised; "already exists" means another
                # instance won the race, anything else (e.g. not authorised) must stop start-up.
                for name, code, message in response.topic_errors:
                    if code not in (0, TopicAlreadyExistsError.errno):
                        raise for_code(code)(f"cannot create topic {name}: {message}")
            return
        except (TopicAuthorizationFailedError, ClusterAuthorizationFailedError):
            raise
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            if attempt == attempts:
                raise
            log.warning("broker not ready (%s), retrying", type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3.0)
        finally:
            await admin.close()
