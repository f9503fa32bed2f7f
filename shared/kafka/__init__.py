"""Kafka runtime: topic creation, the idempotent producer and the one consumer loop."""
