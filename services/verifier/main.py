"""Composition root of the verifier."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from services.verifier.handlers import VerifierHandlers
from services.verifier.settings import VerifierSettings
from shared.crypto import load_keyring
from shared.logs import configure_logging
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")


async def main() -> None:
    settings = VerifierSettings()  # type: ignore[call-arg]
    configure_logging("verifier", settings.log_level)
    async with ServiceRuntime.open("verifier", settings, MIGRATIONS) as runtime:
        handlers = VerifierHandlers(
            unit_of_work=runtime.unit_of_work,
            clock=runtime.clock,
            topics=runtime.topics,
            hash_keys=load_keyring(settings.hash_keys_file, "OTP_HASH_KEYS_FILE"),
            attempt_keys=load_keyring(settings.attempt_keys_file, "OTP_ATTEMPT_KEYS_FILE"),
            max_attempt_lag=settings.max_attempt_lag,
            require_assignment=settings.verifier_require_assignment,
            flag_policy=settings.flag_policy(),
        )
        topics = runtime.topics
        runtime.add_task(partial(handlers.run_parked_ticker, older_than_seconds=settings.verifier_park_seconds))
        runtime.consume("verifier", [topics.issuance, topics.attempts, topics.days, topics.couriers],
                        handlers.by_event_type())
        await runtime.run()
