"""The demo's report and the invariants it checks, from what the topics and the mailbox hold."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from demo.doorstep import Doorstep
from demo.mailbox import MailboxReader
from demo.orders import OrderPlan, PlanSummary
from demo.tap import TopicTap
from shared.events import (
    CodeExpired,
    HandoverDecided,
    NotificationFailed,
    NotificationSent,
    OtpIssued,
    OtpNotRequired,
    RedeliveryQueued,
    ShipmentReturned,
)

__all__ = ["Report", "build_report", "render_table"]


@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)
    breaches: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.breaches.values())


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(int(round(q * len(ordered) + 0.5)) - 1, 0)  # nearest rank
    return round(ordered[min(rank, len(ordered) - 1)], 1)


def build_report(
    plans: list[OrderPlan],
    summary: PlanSummary,
    tap: TopicTap,
    doorstep: Doorstep,
    mailbox: MailboxReader,
    threshold: Decimal,
    code_carriers: set[str],
    settings: dict[str, Any],
    exit_codes: dict[str, int | None] | None = None,
) -> Report:
    report = Report()
    by_shipment = {doorstep.shipment_id(plan): plan for plan in plans}
    issued = [item.event for item in tap.of_type(OtpIssued)]
    assert all(isinstance(event, OtpIssued) for event in issued)
    not_required = tap.of_type(OtpNotRequired)
    decisions = [item.event for item in tap.of_type(HandoverDecided)]
    expired = [item.event for item in tap.of_type(CodeExpired)]
    redeliveries = [item.event for item in tap.of_type(RedeliveryQueued)]
    returned = [item.event for item in tap.of_type(ShipmentReturned)]
    sent = [item.event for item in tap.of_type(NotificationSent)]
    failed = tap.of_type(NotificationFailed)

    accepted = [d for d in decisions if isinstance(d, HandoverDecided) and d.outcome == "accepted"]
    rejections = Counter(
        str(d.reason.value) for d in decisions if isinstance(d, HandoverDecided) and d.reason is not None
    )
    outcomes = Counter(doorstep.outcomes.values())
    first_day_codes = [e for e in issued if isinstance(e, OtpIssued) and e.day_number == 1]

    dispatch_to_email = []
    for event in first_day_codes:
        assert isinstance(event, OtpIssued)
        mails = mailbox.by_code_id.get(event.code_id, [])
        if mails and event.shipment_id in doorstep.dispatch_wall:
            dispatched_wall = doorstep.dispatch_wall[event.shipment_id]
            dispatch_to_email.append((mails[0].received_at.timestamp() - dispatched_wall) * 1000)
    attempt_to_decision = [(a.decided_wall - a.sent_wall) * 1000 for a in doorstep.attempts]

    report.figures = {
        "input": {
            "orders_read": summary.read,
            "orders_in_window": summary.in_window,
            "not_dispatched": dict(summary.skipped),
            "data_oddities": dict(summary.oddities),
        },
        "shipments_dispatched": len(plans),
        "needing_a_code": len(first_day_codes),
        "no_code_needed": len(not_required),
        "codes_issued": len(issued),
        "emails_sent": len(sent),
        "emails_failed": len(failed),
        "emails_in_mailbox": sum(len(v) for v in mailbox.by_code_id.values()),
        "handovers_accepted": {
            "total": len(accepted),
            "first_day": sum(1 for d in accepted if d.day_number == 1),
            "later_day": sum(1 for d in accepted if (d.day_number or 0) > 1),
            "by_customer": sum(1 for d in accepted if d.receiver.kind == "customer"),
            "by_neighbour": sum(1 for d in accepted if d.receiver.kind == "neighbour"),
        },
        "rejections_by_reason": dict(sorted(rejections.items())),
        "codes_expired": len(expired),
        "codes_expired_after_lock": sum(1 for e in expired if isinstance(e, CodeExpired) and e.was_locked),
        "redeliveries": len(redeliveries),
        "returned_to_sender": len(returned),
        "doorstep_scenarios": dict(sorted(doorstep.scenarios.items())),
        "shipment_outcomes": dict(sorted(outcomes.items())),
        "courier_delays": dict(doorstep.late_steps),
        "latency_ms": {
            "dispatch_to_email_p50": _percentile(dispatch_to_email, 0.50),
            "dispatch_to_email_p99": _percentile(dispatch_to_email, 0.99),
            "attempt_to_decision_p50": _percentile(attempt_to_decision, 0.50),
            "attempt_to_decision_p99": _percentile(attempt_to_decision, 0.99),
            "samples": {"emails": len(dispatch_to_email), "attempts": len(attempt_to_decision)},
        },
        "dead_letters": len(tap.dead_letters),
        "decisions_other_than_the_courier_expected": _unexpected(doorstep),
        "settings": settings,
    }
    report.breaches = _invariants(by_shipment, issued, decisions, expired, redeliveries, returned, tap, doorstep,
                                  mailbox, threshold, code_carriers)
    report.breaches["every service stopped cleanly on SIGTERM"] = [
        f"{name}: exit {code}" for name, code in (exit_codes or {}).items() if code != 0]
    report.figures["invariants"] = {name: ("ok" if not found else f"{len(found)} broken")
                                    for name, found in report.breaches.items()}
    return report


def _unexpected(doorstep: Doorstep) -> dict[str, int]:
    """Where the door played out otherwise than planned (e.g. pipeline lag); not a breach by itself."""
    found: Counter[str] = Counter()
    for record in doorstep.attempts:
        actual = record.decision.outcome if record.decision.outcome == "accepted" else str(record.decision.reason)
        if actual != record.expected:
            found[f"expected {record.expected}, got {actual}"] += 1
    return dict(found)


def _invariants(
    by_shipment: dict[str, OrderPlan],
    issued: list[Any],
    decisions: list[Any],
    expired: list[Any],
    redeliveries: list[Any],
    returned: list[Any],
    tap: TopicTap,
    doorstep: Doorstep,
    mailbox: MailboxReader,
    threshold: Decimal,
    code_carriers: set[str],
) -> dict[str, list[str]]:
    codes = {event.code_id: event for event in issued}
    codes_by_shipment: dict[str, list[OtpIssued]] = defaultdict(list)
    for event in issued:
        codes_by_shipment[event.shipment_id].append(event)

    one_email = [f"{code_id}: {len(mailbox.by_code_id.get(code_id, []))} emails" for code_id in codes
                 if len(mailbox.by_code_id.get(code_id, [])) != 1]
    one_email += [f"{code_id}: email for a code never issued" for code_id in mailbox.by_code_id if code_id not in codes]

    accepted_right = []
    for record in doorstep.attempts:
        decision = record.decision
        if decision.outcome != "accepted":
            continue
        latest = max(codes_by_shipment[decision.shipment_id], key=lambda e: e.day_number, default=None)
        code = codes.get(decision.code_id or "")
        if latest is None or code is None or decision.code_id != latest.code_id:
            accepted_right.append(f"{record.attempt_id}: accepted a code that is not the current one")
        elif record.code_source != decision.code_id:
            accepted_right.append(f"{record.attempt_id}: accepted a code told from {record.code_source}")
        elif not decision.attempted_at < code.valid_until:
            accepted_right.append(f"{record.attempt_id}: accepted after the code's validity")
    made = {a.attempt_id for a in doorstep.attempts}
    unrecorded = {d.attempt_id for d in decisions if d.outcome == "accepted"} - made
    accepted_right += [f"{attempt}: accepted an attempt no courier made" for attempt in unrecorded]

    carried_on = []
    next_codes = {(e.shipment_id, e.day_number) for e in issued}
    returned_ids = {e.shipment_id for e in returned}
    for event in expired:
        if (event.shipment_id, event.day_number + 1) not in next_codes and event.shipment_id not in returned_ids:
            carried_on.append(f"{event.code_id}: expired without a new code or a return")
    for event in redeliveries:
        previous = codes.get(event.previous_code_id)
        if previous is not None and not event.delivery_date > previous.delivery_date:
            carried_on.append(f"{event.shipment_id}: redelivery not on a later day")
    for shipment_id, outcome in doorstep.outcomes.items():
        if outcome == "stuck":
            carried_on.append(f"{shipment_id}: neither delivered nor returned at the end")

    thresholds = []
    for shipment_id, plan in by_shipment.items():
        needs = plan.carrier in code_carriers and plan.order.items_value >= threshold
        got = shipment_id in codes_by_shipment
        if got and not needs:
            thresholds.append(f"{shipment_id}: a code below the threshold or for another carrier")
        if needs and not got and shipment_id in doorstep.dispatch_wall:
            thresholds.append(f"{shipment_id}: no code although required")

    one_decision = [f"{attempt}: {count} decisions" for attempt, count in
                    Counter(d.attempt_id for d in decisions).items() if count != 1]
    dead = [f"{topic}: {headers.get('dlq-reason')}" for topic, headers, _ in tap.dead_letters]
    return {
        "every issued code has exactly one email": one_email,
        "every accepted handover used the current code within its validity": accepted_right,
        "every undelivered shipment got a new code for a later day or went back": carried_on,
        "no shipment under the threshold got a code": thresholds,
        "every attempt got exactly one decision": one_decision,
        "no valid event was dead-lettered": dead,
    }


def render_table(report: Report) -> str:
    lines: list[str] = []

    def row(label: str, value: Any, indent: int = 0) -> None:
        lines.append(f"{'  ' * indent}{label.replace('_', ' '):<{68 - 2 * indent}} {value}")

    figures = report.figures
    lines.append("=" * 88)
    lines.append("Secure delivery demo: real Olist orders on Kafka, PostgreSQL and SMTP")
    lines.append("=" * 88)
    for key in ("shipments_dispatched", "needing_a_code", "no_code_needed", "codes_issued", "emails_sent",
                "emails_failed", "emails_in_mailbox"):
        row(key.replace("_", " "), figures[key])
    row("handovers accepted", figures["handovers_accepted"]["total"])
    for key, value in figures["handovers_accepted"].items():
        if key != "total":
            row(key.replace("_", " "), value, 1)
    row("rejections", sum(figures["rejections_by_reason"].values()))
    for key, value in figures["rejections_by_reason"].items():
        row(key.replace("_", " "), value, 1)
    for key in ("codes_expired", "codes_expired_after_lock", "redeliveries", "returned_to_sender", "dead_letters"):
        row(key.replace("_", " "), figures[key])
    lines.append("-" * 88)
    latency = figures["latency_ms"]
    row(f"dispatch -> email accepted by SMTP, p50 / p99 (ms; {latency['samples']['emails']} first-day codes)",
        f"{latency['dispatch_to_email_p50']} / {latency['dispatch_to_email_p99']}")
    row("attempt -> decision, p50 / p99 (ms)",
        f"{latency['attempt_to_decision_p50']} / {latency['attempt_to_decision_p99']}")
    lines.append("-" * 88)
    row("doorstep scenarios played (a door can play several)", "")
    for key, value in figures["doorstep_scenarios"].items():
        row(key, value, 1)
    row("shipment outcomes", "")
    for key, value in figures["shipment_outcomes"].items():
        row(key, value, 1)
    if figures["decisions_other_than_the_courier_expected"]:
        row("decisions other than the courier expected (not a breach: e.g. email too late)", "")
    for key, value in figures["decisions_other_than_the_courier_expected"].items():
        row(key, value, 1)
    for key, value in figures["courier_delays"].items():
        row(key, value)
    row("input: orders read / in window", f"{figures['input']['orders_read']} / {figures['input']['orders_in_window']}")
    for key, value in {**figures["input"]["not_dispatched"], **figures["input"]["data_oddities"]}.items():
        row(key, value, 1)
    lines.append("-" * 88)
    for name, found in report.breaches.items():
        row(name, "ok" if not found else f"BROKEN ({len(found)})")
        for example in found[:5]:
            lines.append(f"      e.g. {example}")
    lines.append("=" * 88)
    return "\n".join(lines)
