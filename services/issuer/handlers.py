"""The issuer's handlers: a code when a valuable parcel leaves, a new one for each new day."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from services.issuer import domain
from services.issuer.repository import AsyncpgIssuerRepository
from shared.clock import Clock
from shared.crypto import Keyring, keyed_digest, seal
from shared.events import (
    CodeDigest,
    CodeExpired,
    Envelope,
    Event,
    OtpIssued,
    OtpNotRequired,
    Recipient,
    RedeliveryQueued,
    SealedCode,
    ShipmentDispatched,
    ShipmentReturned,
    Topics,
    code_context,
    derived_event_id,
)
from shared.kafka.consumer import Handler
from shared.postgres.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = ["IssuerHandlers"]

CodeSource = Callable[[], SecretStr]


@dataclass
class IssuerHandlers:
    unit_of_work: UnitOfWorkFactory
    clock: Clock
    topics: Topics
    eligibility: domain.EligibilityPolicy
    policy: domain.IssuePolicy
    seal_keys: Keyring
    hash_keys: Keyring
    new_code: CodeSource

    async def handle_shipment_dispatched(self, envelope: Envelope, event: Event) -> None:
        """ShipmentDispatched → OtpIssued or OtpNotRequired; idempotent on the shipment id."""
        assert isinstance(event, ShipmentDispatched)
        required = domain.requires_code(self.eligibility, event.goods_value, event.currency, event.carrier)
        now = self.clock.now()
        async with self.unit_of_work() as uow:
            if not await uow.claim(envelope):
                return
            repository = AsyncpgIssuerRepository(uow.conn)
            if not await repository.add_shipment(event, required):
                return
            if not required:
                self._emit(uow, envelope, OtpNotRequired(
                    shipment_id=event.shipment_id, delivery_date=event.delivery_date))
                return
            plan = domain.plan_first_code(event.shipment_id, event.delivery_date, event.delivery_zone,
                                          event.dispatched_at, now)
            await self._issue(uow, repository, envelope, event.shipment_id, event.order_reference,
                              event.delivery_zone, event.recipient, event.neighbour_allowed, plan)

    async def handle_code_expired(self, envelope: Envelope, event: Event) -> None:
        """CodeExpired → RedeliveryQueued with a new OtpIssued, or ShipmentReturned; one per code."""
        assert isinstance(event, CodeExpired)
        now = self.clock.now()
        async with self.unit_of_work() as uow:
            if not await uow.claim(envelope):
                return
            repository = AsyncpgIssuerRepository(uow.conn)
            shipment = await repository.lock_shipment(event.shipment_id)
            if (
                shipment is None
                or shipment.status != "out_for_delivery"
                or shipment.current_day != event.day_number
            ):
                return  # a stale expiry: a newer code exists already, or the parcel went back
            outcome = domain.decide_after_expiry(
                event.shipment_id, event.day_number, event.delivery_date, event.delivery_zone,
                now, self.policy,
            )
            if isinstance(outcome, domain.ReturnToSender):
                await repository.mark_returned(event.shipment_id)
                self._emit(uow, envelope, ShipmentReturned(
                    shipment_id=event.shipment_id, last_code_id=event.code_id,
                    days_attempted=outcome.days_attempted))
                return
            self._emit(uow, envelope, RedeliveryQueued(
                shipment_id=event.shipment_id, previous_code_id=event.code_id,
                delivery_date=outcome.plan.delivery_date, day_number=outcome.plan.day_number))
            await self._issue(uow, repository, envelope, shipment.shipment_id, shipment.order_reference,
                              shipment.delivery_zone, shipment.recipient, shipment.neighbour_allowed,
                              outcome.plan)

    async def _issue(
        self,
        uow: UnitOfWork,
        repository: AsyncpgIssuerRepository,
        cause: Envelope,
        shipment_id: str,
        order_reference: str,
        zone: str,
        recipient: Recipient,
        neighbour_allowed: bool,
        plan: domain.CodePlan,
    ) -> None:
        code = self.new_code()
        context = code_context(shipment_id, plan.code_id)
        seal_key_id, sealed = seal(self.seal_keys, code, context)
        hash_key_id, digest = keyed_digest(self.hash_keys, code, context)
        del code
        await repository.add_code(shipment_id, plan, seal_key_id, sealed)
        self._emit(uow, cause, OtpIssued(
            shipment_id=shipment_id,
            code_id=plan.code_id,
            order_reference=order_reference,
            delivery_date=plan.delivery_date,
            delivery_zone=zone,
            day_number=plan.day_number,
            valid_from=plan.valid_from,
            valid_until=plan.valid_until,
            max_attempts=self.policy.max_attempts,
            neighbour_allowed=neighbour_allowed,
            recipient=recipient,
            sealed=SealedCode(key_id=seal_key_id, blob=sealed),
            digest=CodeDigest(key_id=hash_key_id, hmac_sha256=digest),
        ))

    def _emit(self, uow: UnitOfWork, cause: Envelope, event: Event) -> None:
        uow.emit(self.topics.issuance, Envelope.wrap(
            event,
            occurred_at=self.clock.now(),
            event_id=derived_event_id(cause.event_id, event.event_type),
            cause=cause,
        ))

    def by_event_type(self) -> Mapping[str, Handler]:
        return {
            ShipmentDispatched.event_type: self.handle_shipment_dispatched,
            CodeExpired.event_type: self.handle_code_expired,
        }
