"""Composition root of the notifier."""

from __future__ import annotations

import logging
from pathlib import Path

from services.notifier.handlers import NotifierHandlers
from services.notifier.mailer import SmtpMailer
from services.notifier.settings import NotifierSettings
from services.notifier.web import PgTrackingStore, TrackingApp, TrackingHttpServer
from shared.crypto import load_keyring
from shared.logs import configure_logging
from shared.runtime import ServiceRuntime

MIGRATIONS = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)


async def main() -> None:
    settings = NotifierSettings()  # type: ignore[call-arg]
    configure_logging("notifier", settings.log_level)
    async with ServiceRuntime.open("notifier", settings, MIGRATIONS) as runtime:
        mailer = SmtpMailer(
            host=settings.smtp_host, port=settings.smtp_port, sender=settings.notifier_sender,
            timeout=settings.smtp_timeout_seconds, starttls=settings.smtp_starttls,
            username=settings.smtp_username, password=settings.smtp_password,
        )
        seal_keys = load_keyring(settings.seal_keys_file, "OTP_SEAL_KEYS_FILE")
        handlers = NotifierHandlers(
            unit_of_work=runtime.unit_of_work,
            clock=runtime.clock,
            topics=runtime.topics,
            seal_keys=seal_keys,
            mailer=mailer,
            message_id_domain=settings.notifier_message_id_domain,
            defer_base_seconds=settings.notifier_defer_base_seconds,
            defer_max_seconds=settings.notifier_defer_max_seconds,
        )
        runtime.consume("notifier", [runtime.topics.issuance], handlers.by_event_type())
        runtime.add_task(handlers.run_deferred_sender)
        if settings.tracking_keys_file is None:
            log.info("tracking view off: OTP_TRACKING_KEYS_FILE is not set")
        else:
            app = TrackingApp(
                store=PgTrackingStore(runtime.pool), mailer=mailer, seal_keys=seal_keys,
                tracking_keys=load_keyring(settings.tracking_keys_file, "OTP_TRACKING_KEYS_FILE"),
                clock=runtime.clock, message_id_domain=settings.notifier_message_id_domain,
            )
            runtime.add_task(TrackingHttpServer(app, port=settings.notifier_http_port).serve)
        await runtime.run()
