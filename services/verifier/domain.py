"""The verifier's rules for an attempt at the door. Pure: no clock, no crypto, no I/O.

The handler says which code the candidate matched (the current one, an older one of
the same shipment, or none) after comparing keyed hashes in constant time; these
functions decide what that means and how the code's state changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

from shared.events.handover import RejectionReason

__all__ = [
    "Assignment",
    "CodeState",
    "FlagPolicy",
    "FailureSummary",
    "WindowAttempt",
    "assess_failures",
    "check_assignment",
    "CodeStatus",
    "Decision",
    "Match",
    "ShipmentState",
    "decide_attempt",
    "effective_attempt_time",
]


class CodeStatus(StrEnum):
    ACTIVE = "active"
    LOCKED = "locked"
    CONSUMED = "consumed"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"


Match = Literal["current", "older", "none"]


@dataclass(frozen=True)
class CodeState:
    code_id: str
    day_number: int
    valid_from: datetime
    valid_until: datetime
    status: CodeStatus
    wrong_tries: int
    max_attempts: int
    neighbour_allowed: bool

    @property
    def tries_left(self) -> int:
        return max(self.max_attempts - self.wrong_tries, 0)


@dataclass(frozen=True)
class ShipmentState:
    code_required: bool
    returned: bool
    current: CodeState | None


@dataclass(frozen=True)
class Decision:
    accepted: bool
    reason: RejectionReason | None
    tries_left: int
    code: CodeState | None  # the current code after the decision, None if unchanged/absent


def effective_attempt_time(attempted_at: datetime, now: datetime, max_lag: timedelta) -> datetime:
    """When an attempt counts as made: the terminal's time, but never later than now and
    never earlier than `max_lag` ago, so a back-dated attempt cannot revive an expired code."""
    return min(max(attempted_at, now - max_lag), now)


def _reject(reason: RejectionReason, code: CodeState | None, changed: CodeState | None = None) -> Decision:
    return Decision(False, reason, code.tries_left if code else 0, changed)


def decide_attempt(
    shipment: ShipmentState | None,
    match: Match,
    receiver_kind: Literal["customer", "neighbour"],
    at: datetime,
    courier_problem: RejectionReason | None = None,
    stamped_at: datetime | None = None,
) -> Decision:
    """`courier_problem` is what `check_assignment` (or a block on the courier) found: it is
    answered before anything about the parcel is revealed, and uses up no try.

    `stamped_at` is the terminal's own time for the attempt. `at` never runs ahead of our
    clock, but a terminal that itself says the code's day was over is believed: clocks
    disagree by a little, and a code must never count past its end (fail closed)."""
    if shipment is None:
        return _reject(RejectionReason.UNKNOWN_SHIPMENT, None)
    if not shipment.code_required:
        return _reject(RejectionReason.NOT_REQUIRED, None)
    code = shipment.current
    if code is None:
        return _reject(RejectionReason.UNKNOWN_SHIPMENT, None)
    if courier_problem is not None:
        return _reject(courier_problem, code)
    if code.status is CodeStatus.CONSUMED:
        return _reject(RejectionReason.ALREADY_DELIVERED, code)
    if shipment.returned:
        return _reject(RejectionReason.RETURNED, code)
    if code.status is CodeStatus.EXPIRED or max(at, stamped_at or at) >= code.valid_until:
        return _reject(RejectionReason.EXPIRED, code)
    if code.status is CodeStatus.LOCKED:
        return _reject(RejectionReason.LOCKED, code)
    if receiver_kind == "neighbour" and not code.neighbour_allowed:
        return _reject(RejectionReason.NEIGHBOUR_NOT_ALLOWED, code)
    if match == "current":
        consumed = replace(code, status=CodeStatus.CONSUMED)
        return Decision(True, None, code.tries_left, consumed)
    if match == "older":
        # The customer read yesterday's email: no guess, so no try is used up.
        return _reject(RejectionReason.SUPERSEDED, code)
    tried = replace(code, wrong_tries=code.wrong_tries + 1)
    if tried.tries_left == 0:
        tried = replace(tried, status=CodeStatus.LOCKED)
    return _reject(RejectionReason.WRONG_CODE, tried, tried)


@dataclass(frozen=True)
class Assignment:
    courier_id: str
    terminal_id: str
    out_for_delivery_at: datetime


def check_assignment(
    assignment: Assignment | None, courier_id: str, terminal_id: str, at: datetime
) -> RejectionReason | None:
    """Only the courier and terminal carrying the parcel that day, once it is out, may try."""
    if assignment is None or (assignment.courier_id, assignment.terminal_id) != (courier_id, terminal_id):
        return RejectionReason.NOT_ASSIGNED
    if at < assignment.out_for_delivery_at:
        return RejectionReason.NOT_OUT_FOR_DELIVERY
    return None


@dataclass(frozen=True)
class WindowAttempt:
    shipment_id: str
    accepted: bool
    reason: str | None


@dataclass(frozen=True)
class FlagPolicy:
    window: timedelta = timedelta(hours=8)
    min_failed_shipments: int = 4
    min_wrong_tries: int = 6
    action: Literal["alert", "refuse"] = "alert"


@dataclass(frozen=True)
class FailureSummary:
    failed_shipments: int
    wrong_tries: int
    flagged: bool


def assess_failures(attempts: Sequence[WindowAttempt], policy: FlagPolicy) -> FailureSummary:
    """Guessing looks like wrong codes spread over many parcels that are never handed over;
    an honest typo is followed by the right code at the same door."""
    wrong: dict[str, int] = {}
    handed_over: set[str] = set()
    for attempt in attempts:
        if attempt.accepted:
            handed_over.add(attempt.shipment_id)
        elif attempt.reason == RejectionReason.WRONG_CODE.value:
            wrong[attempt.shipment_id] = wrong.get(attempt.shipment_id, 0) + 1
    failed = {shipment: count for shipment, count in wrong.items() if shipment not in handed_over}
    tries = sum(failed.values())
    flagged = len(failed) >= policy.min_failed_shipments and tries >= policy.min_wrong_tries
    return FailureSummary(failed_shipments=len(failed), wrong_tries=tries, flagged=flagged)
