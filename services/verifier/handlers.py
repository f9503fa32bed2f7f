"""The verifier's handlers: learn codes as keyed hashes, decide attempts, expire closed days."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from services.verifier import domain
from services.verifier.repository import AsyncpgVerifierRepository, StoredCode
from shared.calendar import end_of_local_day
from shared.clock import Clock
from shared.crypto import Keyring, open_sealed, verify_digest
from shared.errors import BadEvent, SealError
from shared.events import (
    CodeExpired,
    CourierAssigned,
    CourierCleared,
    CourierFlagged,
    DayClosed,
    Envelope,
    Event,
    HandoverAttempted,
    HandoverDecided,
    OtpIssued,
    OtpNotRequired,
    RejectionReason,
    ShipmentReturned,
    Topics,
    attempt_context,
    code_context,
    derived_event_id,
)
from shared.kafka.consumer import Handler
from shared.postgres.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = ["DAY_CLOSE_SKEW", "VerifierHandlers"]

# A scheduler's clock may run a little ahead of ours; a day closed earlier than this is refused.
DAY_CLOSE_SKEW = timedelta(minutes=5)

log = logging.getLogger(__name__)


@dataclass
class VerifierHandlers:
    unit_of_work: UnitOfWorkFactory
    clock: Clock
    topics: Topics
    hash_keys: Keyring
    attempt_keys: Keyring
    max_attempt_lag: timedelta
    require_assignment: bool = True
    flag_policy: domain.FlagPolicy = field(default_factory=domain.FlagPolicy)

    async def handle_otp_issued(self, envelope: Envelope, event: Event) -> None:
        """OtpIssued → the code's hash stored, older codes superseded; idempotent on the code id."""
        assert isinstance(event, OtpIssued)
        async with self.unit_of_work() as uow:
            if not await uow.claim(envelope):
                return
            repository = AsyncpgVerifierRepository(uow.conn)
            await repository.lock_day(event.delivery_date, event.delivery_zone)
            await repository.lock_shipment_key(event.shipment_id)
            await repository.upsert_shipment(event.shipment_id, code_required=True)
            if not await repository.add_code(event, domain.CodeStatus.ACTIVE):
                return
            if await repository.is_day_closed(event.delivery_date, event.delivery_zone):
                # Its day closed before the code reached us: it expires now, the parcel moves on.
                await repository.expire_code(event.code_id)
                self._emit(uow, envelope, self.topics.expiries, CodeExpired(
                    shipment_id=event.shipment_id, code_id=event.code_id,
                    delivery_date=event.delivery_date, delivery_zone=event.delivery_zone,
                    day_number=event.day_number, was_locked=False, expired_at=self.clock.now()),
                    discriminator=event.code_id)
            await self._release_parked(uow, repository, event.shipment_id)

    async def handle_otp_not_required(self, envelope: Envelope, event: Event) -> None:
        """OtpNotRequired → the shipment is known to need no code; idempotent on the shipment id."""
        assert isinstance(event, OtpNotRequired)
        async with self.unit_of_work() as uow:
            if await uow.claim(envelope):
                await AsyncpgVerifierRepository(uow.conn).upsert_shipment(event.shipment_id, False)

    async def handle_shipment_returned(self, envelope: Envelope, event: Event) -> None:
        """ShipmentReturned → later attempts are rejected as returned; idempotent by nature."""
        assert isinstance(event, ShipmentReturned)
        async with self.unit_of_work() as uow:
            if await uow.claim(envelope):
                await AsyncpgVerifierRepository(uow.conn).mark_returned(event.shipment_id)

    async def handle_day_closed(self, envelope: Envelope, event: Event) -> None:
        """DayClosed → every unused code of that date and zone expires; one CodeExpired per code."""
        assert isinstance(event, DayClosed)
        if self.clock.now() < end_of_local_day(event.local_date, event.zone) - DAY_CLOSE_SKEW:
            raise BadEvent("premature_day_close", f"{event.zone} {event.local_date} has not ended by our clock")
        async with self.unit_of_work() as uow:
            if not await uow.claim(envelope):
                return
            repository = AsyncpgVerifierRepository(uow.conn)
            await repository.lock_day(event.local_date, event.zone)
            if not await repository.close_day(event.local_date, event.zone, event.closed_at):
                return
            for code, was_locked in await repository.expire_open_codes(event.local_date, event.zone):
                self._emit(uow, envelope, self.topics.expiries, CodeExpired(
                    shipment_id=code.shipment_id, code_id=code.state.code_id,
                    delivery_date=code.delivery_date, delivery_zone=code.delivery_zone,
                    day_number=code.state.day_number, was_locked=was_locked,
                    expired_at=event.closed_at), discriminator=code.state.code_id)

    async def handle_handover_attempted(self, envelope: Envelope, event: Event) -> None:
        """HandoverAttempted → HandoverDecided; the attempt id is the key: asked twice, answered alike."""
        assert isinstance(event, HandoverAttempted)
        now = self.clock.now()
        try:
            candidate = open_sealed(self.attempt_keys, event.entered_code.key_id, event.entered_code.blob,
                                    attempt_context(event.attempt_id, event.shipment_id))
        except SealError as exc:
            raise BadEvent("unsealable_code", "entered code does not open with the attempt keys") from exc
        async with self.unit_of_work() as uow:
            if not await uow.claim(envelope):
                return
            repository = AsyncpgVerifierRepository(uow.conn)
            await repository.lock_shipment_key(event.shipment_id)
            stored = await repository.stored_decision(event.attempt_id)
            if stored is not None:
                if stored["shipment_id"] != event.shipment_id:
                    raise BadEvent("attempt_id_reused", "this attempt id was already used for another shipment")
                self._emit(uow, envelope, self.topics.decisions, HandoverDecided.model_validate(stored))
                return
            if await repository.is_parked(event.attempt_id):
                return  # the same attempt again while it waits: it gets its one answer then
            found = await repository.lock_shipment(event.shipment_id)
            if await self._code_still_on_its_way(repository, event, found):
                await repository.park(event.attempt_id, event.shipment_id, envelope.model_dump(mode="json"), now)
                return
            await self._decide(uow, repository, envelope, event, candidate, now, found)

    async def _code_still_on_its_way(
        self,
        repository: AsyncpgVerifierRepository,
        event: HandoverAttempted,
        found: tuple[domain.ShipmentState, list[StoredCode]] | None,
    ) -> bool:
        """The day's route names a delivery day later than the newest code we hold: its code is
        issued but still on its way to us, so deciding now would answer from yesterday's state."""
        if not self.require_assignment:
            return False
        planned = await repository.latest_assignment_date(event.shipment_id)
        if planned is None:
            return False
        if found is None or found[0].current is None:
            return True
        shipment, codes = found
        if shipment.returned:
            return False
        current = next(code for code in codes if code.state.code_id == shipment.current.code_id)  # type: ignore[union-attr]
        return planned > current.delivery_date and current.state.status is not domain.CodeStatus.CONSUMED

    async def _release_parked(self, uow: UnitOfWork, repository: AsyncpgVerifierRepository, shipment_id: str) -> None:
        """Decides the attempts that were waiting for this shipment's code, in arrival order."""
        for stored_envelope, received_at in await repository.take_parked(shipment_id):
            envelope = Envelope.model_validate(stored_envelope)
            event = HandoverAttempted.model_validate(envelope.payload)
            candidate = open_sealed(self.attempt_keys, event.entered_code.key_id, event.entered_code.blob,
                                    attempt_context(event.attempt_id, event.shipment_id))
            await self._decide(uow, repository, envelope, event, candidate, received_at,
                               await repository.lock_shipment(event.shipment_id))

    async def decide_overdue_parked(self, older_than_seconds: float) -> int:
        """A parked attempt whose code never came is decided with what is known."""
        async with self.unit_of_work() as uow:
            shipments = await AsyncpgVerifierRepository(uow.conn).overdue_parked_shipments(older_than_seconds)
        for shipment_id in shipments:
            async with self.unit_of_work() as uow:
                repository = AsyncpgVerifierRepository(uow.conn)
                await repository.lock_shipment_key(shipment_id)
                await self._release_parked(uow, repository, shipment_id)
        return len(shipments)

    async def run_parked_ticker(self, stop: asyncio.Event, older_than_seconds: float) -> None:
        while not stop.is_set():
            try:
                released = await self.decide_overdue_parked(older_than_seconds)
                if released:
                    log.warning("decided %d parked attempt(s) whose code never arrived", released)
            except Exception as exc:  # a ticker must outlive any one failure
                log.warning("cannot look at parked attempts (%s), retrying", type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass

    async def _decide(self, uow: UnitOfWork, repository: AsyncpgVerifierRepository, envelope: Envelope,
                      event: HandoverAttempted, candidate: Any, received_at: datetime,
                      found: tuple[domain.ShipmentState, list[StoredCode]] | None) -> None:
        """The decision itself, on the shipment as locked by the caller; the attempt's time is
        judged against when it reached us."""
        now = self.clock.now()
        shipment, codes = found if found else (None, [])
        match = _match(self.hash_keys, codes, shipment, candidate)
        at = domain.effective_attempt_time(event.attempted_at, received_at, self.max_attempt_lag)
        problem = await self._courier_problem(repository, event, codes, shipment, at)
        decision = domain.decide_attempt(shipment, match, event.receiver.kind, at, problem,
                                          stamped_at=event.attempted_at)
        if decision.code is not None:
            received_by: dict[str, Any] | None = None
            if decision.accepted:
                received_by = {"courier_id": event.courier_id, "attempt_id": event.attempt_id,
                               **event.receiver.model_dump()}
            await repository.update_code(decision.code, received_by)
        current = shipment.current if shipment else None
        decided = HandoverDecided(
            attempt_id=event.attempt_id, shipment_id=event.shipment_id, courier_id=event.courier_id,
            terminal_id=event.terminal_id, outcome="accepted" if decision.accepted else "rejected",
            reason=decision.reason,
            tries_left=decision.tries_left, receiver=event.receiver,
            code_id=current.code_id if current else None,
            day_number=current.day_number if current else None,
            attempted_at=event.attempted_at, decided_at=now)
        await repository.record_decision(event.attempt_id, event.shipment_id,
                                         decided.model_dump(mode="json"), now)
        self._emit(uow, envelope, self.topics.decisions, decided)
        if decision.reason is RejectionReason.WRONG_CODE:
            await self._watch_failures(uow, envelope, repository, "courier", event.courier_id, now)
            await self._watch_failures(uow, envelope, repository, "terminal", event.terminal_id, now)

    async def _courier_problem(
        self,
        repository: AsyncpgVerifierRepository,
        event: HandoverAttempted,
        codes: list[StoredCode],
        shipment: domain.ShipmentState | None,
        at: datetime,
    ) -> RejectionReason | None:
        if self.flag_policy.action == "refuse" and (
            await repository.has_open_flag("courier", event.courier_id)
            or await repository.has_open_flag("terminal", event.terminal_id)
        ):
            return RejectionReason.COURIER_BLOCKED
        if not self.require_assignment or shipment is None or shipment.current is None:
            return None
        current = next(code for code in codes if code.state.code_id == shipment.current.code_id)
        assignment = await repository.assignment_for(event.shipment_id, current.delivery_date)
        return domain.check_assignment(assignment, event.courier_id, event.terminal_id, at)

    async def _watch_failures(self, uow: UnitOfWork, cause: Envelope, repository: AsyncpgVerifierRepository,
                              subject: Literal["courier", "terminal"], subject_id: str, now: datetime) -> None:
        """A wrong code: does this courier's (or terminal's) recent record now look like guessing?"""
        since = now - self.flag_policy.window
        cleared = await repository.last_cleared(subject, subject_id)
        if cleared is not None and cleared > since:
            since = cleared
        summary = domain.assess_failures(await repository.window_attempts(subject, subject_id, since),
                                         self.flag_policy)
        if not summary.flagged:
            return
        if await repository.open_flag(subject, subject_id, now, summary.failed_shipments, summary.wrong_tries):
            log.warning("%s %s flagged: %d parcels with wrong codes and no handover", subject, subject_id,
                        summary.failed_shipments)
            self._emit(uow, cause, self.topics.couriers, CourierFlagged(
                subject=subject, subject_id=subject_id, reason="guessing_pattern",
                failed_shipments=summary.failed_shipments, wrong_tries=summary.wrong_tries,
                window_start=since, window_end=now, policy=self.flag_policy.action), discriminator=subject)

    async def handle_courier_assigned(self, envelope: Envelope, event: Event) -> None:
        """CourierAssigned → who may try at this door that day; the latest assignment wins."""
        assert isinstance(event, CourierAssigned)
        async with self.unit_of_work() as uow:
            if await uow.claim(envelope):
                await AsyncpgVerifierRepository(uow.conn).upsert_assignment(event)

    async def handle_courier_cleared(self, envelope: Envelope, event: Event) -> None:
        """CourierCleared → an operator lifted the flag; failures count afresh from now."""
        assert isinstance(event, CourierCleared)
        async with self.unit_of_work() as uow:
            if await uow.claim(envelope):
                await AsyncpgVerifierRepository(uow.conn).clear_flag(
                    event.subject, event.subject_id, self.clock.now(), event.cleared_by)

    def _emit(self, uow: UnitOfWork, cause: Envelope, topic: str, event: Event,
              discriminator: str = "") -> None:
        uow.emit(topic, Envelope.wrap(
            event, occurred_at=self.clock.now(),
            event_id=derived_event_id(cause.event_id, event.event_type, discriminator), cause=cause))

    def by_event_type(self) -> Mapping[str, Handler]:
        return {
            OtpIssued.event_type: self.handle_otp_issued,
            OtpNotRequired.event_type: self.handle_otp_not_required,
            ShipmentReturned.event_type: self.handle_shipment_returned,
            DayClosed.event_type: self.handle_day_closed,
            HandoverAttempted.event_type: self.handle_handover_attempted,
            CourierAssigned.event_type: self.handle_courier_assigned,
            CourierCleared.event_type: self.handle_courier_cleared,
        }


def _match(keys: Keyring, codes: list[StoredCode], shipment: domain.ShipmentState | None,
           candidate: Any) -> domain.Match:
    """Compares against every code of the shipment, so timing does not tell which one matched."""
    current_id = shipment.current.code_id if shipment and shipment.current else None
    result: domain.Match = "none"
    for code in codes:
        context = code_context(code.shipment_id, code.state.code_id)
        try:
            matches = verify_digest(keys, code.digest_key_id, code.digest, candidate, context)
        except SealError:
            matches = False
        if matches:
            result = "current" if code.state.code_id == current_id else ("older" if result == "none" else result)
    return result
