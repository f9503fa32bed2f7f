"""Composition root of the issuer: wires Kafka, PostgreSQL, keys and handlers."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from services.issuer.handlers import IssuerHandlers
from services.issuer.settings import IssuerSettings
from shared.crypto import generate_code, load_keyring
from shared.logs import configure_logging
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


async def main() -> None:
    settings = IssuerSettings()  # type: ignore[call-arg]
    configure_logging("issuer", settings.log_level)
    async with ServiceRuntime.open("issuer", settings, MIGRATIONS) as runtime:
        handlers = IssuerHandlers(
            unit_of_work=runtime.unit_of_work,
            clock=runtime.clock,
            topics=runtime.topics,
            eligibility=settings.eligibility(),
            policy=settings.issue_policy(),
            seal_keys=load_keyring(settings.seal_keys_file, "OTP_SEAL_KEYS_FILE"),
            hash_keys=load_keyring(settings.hash_keys_file, "OTP_HASH_KEYS_FILE"),
            new_code=partial(generate_code, settings.issuer_code_digits),
        )
        runtime.consume("issuer", [runtime.topics.dispatched, runtime.topics.expiries],
                        handlers.by_event_type())
        await runtime.run()
