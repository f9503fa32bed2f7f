"""The notifier's handler: exactly one email per issued code, never inside a transaction.

1. claim the code's delivery row (`pending`) and count the send attempt; commit;
2. hand the message to SMTP with a Message-ID derived from the code id;
3. mark the row `sent` and write NotificationSent to the outbox; commit.

A crash between 2 and 3 sends the email again on redelivery, with the same Message-ID
and `send_attempts` > 1: SMTP gives no way to ask whether a message was taken, so a
repeat is made detectable and counted rather than impossible.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.notifier.mailer import MailDeferred, Mailer, OutgoingEmail, PermanentMailError, stable_message_id
from services.notifier.templates import CodeEmailContent, render_code_email
from services.notifier.tracking import UPSERT_TRACKING_SQL, TrackingRecord
from shared.clock import Clock
from shared.crypto import Keyring, open_sealed
from shared.errors import SealError
from shared.events import (
    Envelope,
    Event,
    NotificationFailed,
    NotificationSent,
    OtpIssued,
    Topics,
    code_context,
    derived_event_id,
)
from shared.faults import crash_point
from shared.kafka.consumer import Handler
from shared.postgres.unit_of_work import UnitOfWorkFactory

__all__ = ["NotifierHandlers", "compose_email"]

log = logging.getLogger(__name__)


@dataclass
class NotifierHandlers:
    unit_of_work: UnitOfWorkFactory
    clock: Clock
    topics: Topics
    seal_keys: Keyring
    mailer: Mailer
    message_id_domain: str
    # Emails SMTP accepted whose `sent` record failed (the database was away): the retry
    # records them without sending again. In memory on purpose: after a crash the row
    # stays `pending` and the email goes again, with the same Message-ID, counted.
    _accepted_unrecorded: dict[str, str] = field(default_factory=dict)
    defer_base_seconds: float = 5.0
    defer_max_seconds: float = 300.0

    async def handle_otp_issued(self, envelope: Envelope, event: Event) -> None:
        """OtpIssued → one email and NotificationSent (or NotificationFailed); keyed by code id."""
        assert isinstance(event, OtpIssued)
        message_id = stable_message_id(event.code_id, self.message_id_domain)
        language = self._accepted_unrecorded.get(event.code_id)
        if language is None:
            try:
                sent = await self._send_once(envelope, event, message_id)
            except MailDeferred as deferred:
                if not deferred.per_recipient:
                    raise  # the server refuses everyone: hold the partition and retry
                await self._defer(envelope, event, str(deferred))
                return
            if sent is None:
                return
            language = self._accepted_unrecorded[event.code_id] = sent
        await self._record_sent(envelope, event, message_id, language)
        self._accepted_unrecorded.pop(event.code_id, None)

    async def _send_once(self, envelope: Envelope, event: OtpIssued, message_id: str) -> str | None:
        """Hands the email to SMTP unless it was already sent; returns its language, or None."""
        async with self.unit_of_work() as uow:
            await uow.conn.execute(
                "INSERT INTO deliveries (code_id, shipment_id, message_id, status) "
                "VALUES ($1, $2, $3, 'pending') ON CONFLICT (code_id) DO NOTHING",
                event.code_id, event.shipment_id, message_id)
            # The tracking view's current code (sealed); a newer day only, never a regression.
            await uow.conn.execute(UPSERT_TRACKING_SQL, *TrackingRecord.from_event(event).as_row())
            status = await uow.conn.fetchval(
                "SELECT status FROM deliveries WHERE code_id = $1 FOR UPDATE", event.code_id)
            if status != "pending":
                return None
            attempts = await uow.conn.fetchval(
                "UPDATE deliveries SET send_attempts = send_attempts + 1, updated_at = now() "
                "WHERE code_id = $1 RETURNING send_attempts", event.code_id)
        if attempts > 1:
            # The previous hand-over may have been accepted before the process died.
            log.warning("code %s: sending again (attempt %d), same Message-ID", event.code_id, attempts)
        try:
            email = self._compose(event, message_id)
            await self.mailer.send(email)
            crash_point("notifier.after_smtp_accept")  # SMTP has it, `sent` is not recorded yet
        except MailDeferred:
            # A 4xx answer: the server certainly did not take it, so this was no hand-over.
            async with self.unit_of_work() as uow:
                await uow.conn.execute(
                    "UPDATE deliveries SET send_attempts = send_attempts - 1 WHERE code_id = $1", event.code_id)
            raise
        except (PermanentMailError, SealError, ValueError) as exc:
            await self._record_failure(envelope, event, f"{type(exc).__name__}: {exc}"[:300], attempts)
            return None
        return email.rendered.language

    async def _record_sent(self, envelope: Envelope, event: OtpIssued, message_id: str, language: str) -> None:
        """Marks the email sent; retried on its own after a database outage, without a resend."""
        async with self.unit_of_work() as uow:
            attempts = await uow.conn.fetchval(
                "UPDATE deliveries SET status = 'sent', accepted_at = $2, language = $3, updated_at = now() "
                "WHERE code_id = $1 RETURNING send_attempts", event.code_id, self.clock.now(), language)
            uow.emit(self.topics.notifications, Envelope.wrap(
                NotificationSent(shipment_id=event.shipment_id, code_id=event.code_id,
                                 message_id=message_id, language=language,
                                 accepted_at=self.clock.now(), send_attempts=max(attempts or 1, 1)),
                occurred_at=self.clock.now(),
                event_id=derived_event_id(envelope.event_id, NotificationSent.event_type), cause=envelope))

    async def _defer(self, envelope: Envelope, event: OtpIssued, reason: str) -> None:
        """Queues the email in its delivery row; `send_deferred` tries again later."""
        async with self.unit_of_work() as uow:
            deferrals = await uow.conn.fetchval(
                """UPDATE deliveries SET status = 'deferred', issued = $2::jsonb, deferrals = deferrals + 1,
                       last_error = $3, updated_at = now()
                   WHERE code_id = $1 AND status = 'pending' RETURNING deferrals""",
                event.code_id, envelope.model_dump_json(), reason[:300])
            if deferrals is not None:
                delay = min(self.defer_base_seconds * 2 ** (deferrals - 1), self.defer_max_seconds)
                await uow.conn.execute(
                    "UPDATE deliveries SET next_attempt_at = now() + make_interval(secs => $2) WHERE code_id = $1",
                    event.code_id, delay * (0.8 + 0.4 * random.random()))  # noqa: S311 - jitter only
        log.info("code %s: recipient deferred (%s), queued for a later try", event.code_id, reason)

    async def send_deferred(self) -> int:
        """Tries the queued emails that are due (and any a crash left half-claimed)."""
        async with self.unit_of_work() as uow:
            rows = await uow.conn.fetch(
                """UPDATE deliveries SET status = 'pending', updated_at = now()
                   WHERE code_id IN (
                       SELECT code_id FROM deliveries
                       WHERE (status = 'deferred' AND next_attempt_at <= now())
                          OR (status = 'pending' AND issued IS NOT NULL AND updated_at < now() - interval '2 minutes')
                       ORDER BY next_attempt_at LIMIT 20 FOR UPDATE SKIP LOCKED)
                   RETURNING issued""")
        for row in rows:
            envelope = Envelope.model_validate(json.loads(row["issued"]))
            event = OtpIssued.model_validate(envelope.payload)
            try:
                await self.handle_otp_issued(envelope, event)
            except Exception as exc:  # the server is away again: back into the queue
                await self._defer(envelope, event, f"{type(exc).__name__}: {exc}")
        return len(rows)

    async def run_deferred_sender(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                if await self.send_deferred():
                    continue
            except Exception as exc:  # a sender loop must outlive any one failure
                log.warning("deferred emails: %s, retrying", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass

    def _compose(self, event: OtpIssued, message_id: str) -> OutgoingEmail:
        return compose_email(self.seal_keys, TrackingRecord.from_event(event), message_id)

    async def _record_failure(self, envelope: Envelope, event: OtpIssued, reason: str, attempts: int) -> None:
        log.error("code %s: email failed for good: %s", event.code_id, reason)
        async with self.unit_of_work() as uow:
            await uow.conn.execute(
                "UPDATE deliveries SET status = 'failed', last_error = $2, updated_at = now() WHERE code_id = $1",
                event.code_id, reason)
            uow.emit(self.topics.notifications, Envelope.wrap(
                NotificationFailed(shipment_id=event.shipment_id, code_id=event.code_id, reason=reason,
                                   failed_at=self.clock.now(), send_attempts=attempts),
                occurred_at=self.clock.now(),
                event_id=derived_event_id(envelope.event_id, NotificationFailed.event_type), cause=envelope))

    def by_event_type(self) -> Mapping[str, Handler]:
        return {OtpIssued.event_type: self.handle_otp_issued}


def compose_email(seal_keys: Keyring, record: TrackingRecord, message_id: str) -> OutgoingEmail:
    """The code's email (the first one, and a resend from the tracking view): opens the code."""
    code = open_sealed(seal_keys, record.key_id, record.sealed_blob,
                       code_context(record.shipment_id, record.code_id))
    rendered = render_code_email(CodeEmailContent(
        recipient_name=record.recipient_name,
        order_reference=record.order_reference,
        code=code.get_secret_value(),
        delivery_date=record.delivery_date,
        valid_until=record.valid_until,
        zone=record.delivery_zone,
        locale=record.recipient_locale,
        neighbour_allowed=record.neighbour_allowed,
        is_redelivery=record.day_number > 1,
    ))
    return OutgoingEmail(
        to_name=rendered_name(record.recipient_name),
        to_address=record.recipient_email,
        message_id=message_id,
        rendered=rendered,
        headers={"X-Delivery-Code-Id": record.code_id, "Auto-Submitted": "auto-generated"},
    )


def rendered_name(name: str) -> str:
    """A display name safe for the To header: no control characters, bounded length."""
    return "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in name)[:100]
