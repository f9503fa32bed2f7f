"""Real Olist orders turned into dispatched shipments and their fate at the door. Pure.

Each order with goods and a carrier hand-off becomes one `ShipmentDispatched`, at the
hand-off time, to the customer's state's time zone. The data's own outcome drives the
simulation: an order delivered on or before its estimate is handed over on its
delivered date, its first delivery day; a late one was planned for its estimated date
and missed the days in between; one that never arrived (shipped, cancelled after
hand-off, delivered without a date) finds nobody on any day and goes back to the
sender. The source's timestamps carry no zone; they are read as local time at the
customer's address.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_DATA",
    "STATE_ZONES",
    "DemoOrder",
    "OrderPlan",
    "PlanSummary",
    "load_orders",
    "plan_orders",
]

DEFAULT_DATA = Path(__file__).parent / "data" / "olist_orders.csv.gz"

# Brazil's states and their IANA zones (Fernando de Noronha, part of PE, is left aside).
STATE_ZONES: dict[str, str] = {
    "AC": "America/Rio_Branco", "AL": "America/Maceio", "AM": "America/Manaus",
    "AP": "America/Belem", "BA": "America/Bahia", "CE": "America/Fortaleza",
    "DF": "America/Sao_Paulo", "ES": "America/Sao_Paulo", "GO": "America/Sao_Paulo",
    "MA": "America/Fortaleza", "MG": "America/Sao_Paulo", "MS": "America/Campo_Grande",
    "MT": "America/Cuiaba", "PA": "America/Belem", "PB": "America/Fortaleza",
    "PE": "America/Recife", "PI": "America/Fortaleza", "PR": "America/Sao_Paulo",
    "RJ": "America/Sao_Paulo", "RN": "America/Fortaleza", "RO": "America/Porto_Velho",
    "RR": "America/Boa_Vista", "RS": "America/Sao_Paulo", "SC": "America/Sao_Paulo",
    "SE": "America/Maceio", "SP": "America/Sao_Paulo", "TO": "America/Araguaina",
}


@dataclass(frozen=True)
class DemoOrder:
    order_id: str
    customer_id: str
    state: str
    status: str
    purchased_at: str
    carrier_at: str
    delivered_at: str
    estimated_at: str
    item_count: int
    items_value: Decimal


@dataclass(frozen=True)
class OrderPlan:
    """One dispatched shipment and how the simulated doorstep will treat it."""

    order: DemoOrder
    zone: str
    dispatched_at: datetime
    first_delivery_date: date
    handed_over_on: date | None  # the data's delivered date; None: nobody is ever found
    carrier: str
    locale: str
    neighbour_allowed: bool
    roll: float  # a uniform number in [0, 1) fixed per order, for the doorstep scenario


@dataclass
class PlanSummary:
    read: int = 0
    in_window: int = 0
    dispatched: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    oddities: Counter[str] = field(default_factory=Counter)


def load_orders(path: Path = DEFAULT_DATA) -> Iterator[DemoOrder]:
    with gzip.open(path, "rb") as raw:
        for row in csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            yield DemoOrder(
                order_id=row["order_id"],
                customer_id=row["customer_unique_id"],
                state=row["customer_state"],
                status=row["order_status"],
                purchased_at=row["order_purchase_timestamp"],
                carrier_at=row["order_delivered_carrier_date"],
                delivered_at=row["order_delivered_customer_date"],
                estimated_at=row["order_estimated_delivery_date"],
                item_count=int(row["item_count"]),
                items_value=Decimal(row["items_value"]),
            )


def _local(text: str, zone: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def _unit(seed: str, *parts: str) -> float:
    digest = hashlib.sha256("|".join((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def plan_orders(
    orders: Iterable[DemoOrder],
    first_day: date,
    last_day: date,
    seed: str,
    limit: int | None = None,
) -> tuple[list[OrderPlan], PlanSummary]:
    """Plans the orders handed to the carrier between first_day and last_day (local dates)."""
    summary = PlanSummary()
    plans: list[OrderPlan] = []
    for order in orders:
        summary.read += 1
        zone = STATE_ZONES.get(order.state)
        if zone is None:
            summary.skipped["unknown state"] += 1
            continue
        dispatched = _local(order.carrier_at, zone)
        if dispatched is None:
            continue  # never handed to the carrier: not part of any delivery day
        if not first_day <= dispatched.date() <= last_day:
            continue
        summary.in_window += 1
        if order.item_count == 0:
            summary.skipped["no items (nothing to deliver)"] += 1
            continue
        if limit is not None and len(plans) >= limit:
            summary.skipped["over --orders limit"] += 1
            continue
        plans.append(_plan(order, zone, dispatched, seed, summary))
    plans.sort(key=lambda plan: (plan.dispatched_at, plan.order.order_id))
    summary.dispatched = len(plans)
    return plans, summary


def _plan(order: DemoOrder, zone: str, dispatched: datetime, seed: str, summary: PlanSummary) -> OrderPlan:
    purchased = _local(order.purchased_at, zone)
    if purchased is not None and dispatched < purchased:
        summary.oddities["carrier hand-off before purchase (dispatched as recorded)"] += 1
    delivered = _local(order.delivered_at, zone)
    estimated = _local(order.estimated_at, zone)
    dispatch_day = dispatched.date()
    estimate_day = estimated.date() if estimated else dispatch_day + timedelta(days=7)
    handed_over_on: date | None = None
    if delivered is not None:
        handed_over_on = delivered.date()
        if handed_over_on < dispatch_day:
            summary.oddities["delivered before carrier hand-off (handed over on dispatch day)"] += 1
            handed_over_on = dispatch_day
        if order.status != "delivered":
            summary.oddities[f"{order.status} but has a delivered date (handed over then)"] += 1
    elif order.status == "delivered":
        summary.oddities["delivered without a delivered date (treated as never found)"] += 1
    if handed_over_on is not None and handed_over_on <= estimate_day:
        first = handed_over_on
    else:
        first = max(estimate_day, dispatch_day)
        if handed_over_on is not None and first > handed_over_on:
            first = handed_over_on
    language_roll = _unit(seed, order.order_id, "locale")
    locale = "pt-BR" if language_roll < 0.7 else ("en" if language_roll < 0.9 else "de-DE")
    return OrderPlan(
        order=order,
        zone=zone,
        dispatched_at=dispatched,
        first_delivery_date=first,
        handed_over_on=handed_over_on,
        carrier="own-fleet" if _unit(seed, order.order_id, "carrier") < 0.85 else "partner-post",
        locale=locale,
        neighbour_allowed=_unit(seed, order.order_id, "neighbour") < 0.95,
        roll=_unit(seed, order.order_id, "scenario"),
    )
