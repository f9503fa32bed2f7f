"""`python -m demo.chaos`: the real-order replay under faults, compared with a calm run.

    python -m demo.chaos [--from 2018-01-01] [--to 2018-04-30] [--copies 10] [--seconds-per-day 5]
                         [--kills 50] [--instances 2] [--seed chaos]

The same plans (the real orders, replayed again `--copies` times with shifted dates and
fresh ids) run twice through two instances of every service: once calm, once while a
driver SIGKILLs a random instance every few seconds and restarts it, restarts the
broker twice and PostgreSQL twice, and makes the SMTP server refuse mail for a minute.

Both runs are paced (see `demo.pacing`): simulated time stands still while the
doorstep has been owed an answer for over a simulated hour, and runs on once it came.
The faults strike wherever processing happens to be (mid-batch, mid-transaction,
mid-send) on a clock that does not wait for them; pacing only keeps the delay a fault
causes from changing who gets a parcel on which day, so the two runs compare one to one.

After both runs drain, it compares: the same shipments delivered, redelivered and
returned; per shipment and day exactly one code; per code exactly one email accepted
by SMTP (a repeat after a crash between SMTP's acceptance and its record is allowed
only if the notifier detected and counted it); per attempt exactly one decision; no
valid event dead-lettered. It prints the counts and exits 1 if any lost, duplicated
or differing count is not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from demo.orders import DEFAULT_DATA, OrderPlan, load_orders, plan_orders
from demo.pacing import PacedClock
from demo.replay import Replay, ReplayOptions, replay
from shared.events import HandoverDecided, OtpIssued, RedeliveryQueued
from stack.environment import PROJECT_ROOT, stack_environment

SESSION_TIMEOUT_MS = 6000  # how long the group waits for a killed member before rebalancing


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.chaos", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2018, 1, 1))
    parser.add_argument("--to", dest="last", type=date.fromisoformat, default=date(2018, 4, 30))
    parser.add_argument("--copies", type=int, default=10, help="replays of the window with shifted dates")
    parser.add_argument("--seconds-per-day", type=float, default=5.0,
                        help="real seconds per simulated day (5: the default size saturates 2 cores at 2)")
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs at least")
    parser.add_argument("--broker-restarts", type=int, default=2)
    parser.add_argument("--database-restarts", type=int, default=2)
    parser.add_argument("--smtp-outage-seconds", type=float, default=60.0)
    parser.add_argument("--seed", default="chaos")
    parser.add_argument("--report-dir", type=Path, default=PROJECT_ROOT / "reports")
    return parser.parse_args(argv)


def copied_plans(plans: list[OrderPlan], copies: int) -> list[OrderPlan]:
    """The window again and again, a day later each time, each copy a new order id."""
    result: list[OrderPlan] = []
    for copy in range(copies):
        shift = timedelta(days=copy)
        for plan in plans:
            order = plan.order if copy == 0 else replace(plan.order, order_id=f"{plan.order.order_id}c{copy}")
            result.append(replace(
                plan, order=order, dispatched_at=plan.dispatched_at + shift,
                first_delivery_date=plan.first_delivery_date + shift,
                handed_over_on=plan.handed_over_on + shift if plan.handed_over_on else None))
    result.sort(key=lambda plan: (plan.dispatched_at, plan.order.order_id))
    return result


@dataclass
class FaultLog:
    kills: int = 0
    broker_restarts: int = 0
    database_restarts: int = 0
    smtp_outage_seconds: float = 0.0
    killed: Counter[str] = field(default_factory=Counter)


def _stack(*words: str) -> None:
    subprocess.run(["bash", "stack/stack.sh", *words], cwd=PROJECT_ROOT, check=True,  # noqa: S603, S607
                   stdout=subprocess.DEVNULL)


def _started_count(session: Replay, name: str) -> int:
    return (session.log_dir / f"{name}.log").read_text(errors="replace").count(" started")


async def _wait_restarted(session: Replay, name: str, before: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _started_count(session, name) <= before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} did not start again")
        await asyncio.sleep(0.1)


def chaos_driver(args: argparse.Namespace, faults: FaultLog) -> Any:
    rng = random.Random(f"{args.seed}|driver")  # noqa: S311 - reproducible fault schedule

    async def drive(session: Replay, stop: asyncio.Event) -> None:
        others = (["broker"] * args.broker_restarts + ["database"] * args.database_restarts
                  + (["smtp"] if args.smtp_outage_seconds > 0 else []))
        schedule = ["kill"] * args.kills + others
        rng.shuffle(schedule)
        names = sorted(session.services.processes)
        for fault in schedule:
            await asyncio.sleep(rng.uniform(1.5, 4.0))  # running time between faults
            if stop.is_set():
                return
            await _inflict(fault, session, names, rng, faults, args)
        print(f"  chaos: every planned fault done ({faults.kills} kills)", flush=True)

    return drive


async def _inflict(fault: str, session: Replay, names: list[str], rng: random.Random, faults: FaultLog,
                   args: argparse.Namespace) -> None:
    if fault == "kill":
        name = rng.choice(names)
        service, number = name.rsplit("-", 1)
        before = _started_count(session, name)
        session.services.kill(name, signal.SIGKILL)
        session.services.start_instance(service, int(number))
        faults.kills += 1
        faults.killed[service] += 1
        await _wait_restarted(session, name, before)
    elif fault == "broker":
        print("  chaos: restarting the Kafka broker", flush=True)
        await asyncio.to_thread(_stack, "restart", "kafka")
        faults.broker_restarts += 1
    elif fault == "database":
        print("  chaos: restarting PostgreSQL", flush=True)
        await asyncio.to_thread(_stack, "restart", "postgres")
        faults.database_restarts += 1
    elif fault == "smtp":
        print(f"  chaos: SMTP refuses mail for {args.smtp_outage_seconds:.0f}s", flush=True)
        flag = Path(session.env["OTP_MAILDIR"]).parent / "refuse"
        flag.touch()
        started = time.monotonic()
        await asyncio.sleep(args.smtp_outage_seconds)
        flag.unlink()
        faults.smtp_outage_seconds += time.monotonic() - started


@dataclass(frozen=True)
class Outcome:
    """What a run did, keyed by order id so that two runs' shipment ids compare."""

    delivered: set[str]
    redelivered: set[str]
    returned: set[str]
    codes_per_day: dict[tuple[str, int], int]
    code_values: dict[tuple[str, int], set[str]]
    emails_per_code: dict[tuple[str, int], int]
    decisions: dict[str, set[str]]
    attempts_made: int
    events: int
    dead_letters: int
    stuck: int


def _order(session: Replay, shipment_id: str) -> str:
    return shipment_id.removeprefix(f"{session.run_tag}-")


def outcome_of(session: Replay) -> Outcome:
    tap, doorstep, mailbox = session.tap, session.doorstep, session.mailbox
    codes_per_day: Counter[tuple[str, int]] = Counter()
    code_values: dict[tuple[str, int], set[str]] = {}
    emails: dict[tuple[str, int], int] = {}
    for item in tap.of_type(OtpIssued):
        event = item.event
        assert isinstance(event, OtpIssued)
        key = (_order(session, event.shipment_id), event.day_number)
        codes_per_day[key] += 1
        mails = mailbox.by_code_id.get(event.code_id, [])
        emails[key] = len(mails)
        code_values[key] = {mail.code for mail in mails}
    decisions: dict[str, set[str]] = {}
    for item in tap.of_type(HandoverDecided):
        decision = item.event
        assert isinstance(decision, HandoverDecided)
        decisions.setdefault(decision.attempt_id, set()).add(
            json.dumps(decision.model_dump(mode="json", exclude={"decided_at"}), sort_keys=True))
    return Outcome(
        delivered={_order(session, s) for s, o in doorstep.outcomes.items() if o == "delivered"},
        redelivered={_order(session, e.event.shipment_id) for e in tap.of_type(RedeliveryQueued)},  # type: ignore[attr-defined]
        returned={_order(session, s) for s, o in doorstep.outcomes.items() if o == "returned"},
        codes_per_day=dict(codes_per_day), code_values=code_values, emails_per_code=emails,
        decisions=decisions, attempts_made=len(doorstep.attempts), events=len(tap.events),
        dead_letters=len(tap.dead_letters),
        stuck=sum(1 for o in doorstep.outcomes.values() if o == "stuck"),
    )


async def detected_repeats(session: Replay) -> dict[str, int]:
    """The notifier's own record: code ids it handed to SMTP more than once."""
    connection = await asyncpg.connect(session.env["OTP_PG_DSN"])
    try:
        rows = await connection.fetch(
            f'SELECT code_id, send_attempts FROM "{session.namespace}_notifier".deliveries '  # noqa: S608
            "WHERE send_attempts > 1")
    finally:
        await connection.close()
    return {row["code_id"]: row["send_attempts"] for row in rows}


def compare(calm: Outcome, chaos: Outcome, chaos_session: Replay, repeats: dict[str, int]) -> dict[str, Any]:
    differing = {
        "delivered": len(calm.delivered ^ chaos.delivered),
        "redelivered": len(calm.redelivered ^ chaos.redelivered),
        "returned": len(calm.returned ^ chaos.returned),
        "attempts made": abs(calm.attempts_made - chaos.attempts_made),
    }
    lost = {
        "codes (shipment and day)": len(set(calm.codes_per_day) - set(chaos.codes_per_day)),
        "emails": sum(1 for key, count in chaos.emails_per_code.items() if count == 0),
        "decisions": chaos.attempts_made - len(chaos.decisions),
        "shipments left neither delivered nor returned": chaos.stuck,
    }
    repeated_emails = {key: count for key, count in chaos.emails_per_code.items() if count > 1}
    detected = {(_order(chaos_session, code_id.rsplit(".d", 1)[0]), int(code_id.rsplit(".d", 1)[1]))
                for code_id in repeats}
    duplicated = {
        "codes per shipment and day": sum(1 for count in chaos.codes_per_day.values() if count > 1)
        + sum(1 for values in chaos.code_values.values() if len(values) > 1),
        "emails not detected as repeats": sum(1 for key in repeated_emails if key not in detected),
        "decisions per attempt": sum(1 for answers in chaos.decisions.values() if len(answers) > 1),
        "valid events dead-lettered": chaos.dead_letters,
    }
    return {
        "events": {"calm": calm.events, "chaos": chaos.events},
        "lost": lost,
        "duplicated": duplicated,
        "differing": differing,
        "emails repeated after a crash, detected and counted": len(repeated_emails),
        "shipments": {"delivered": len(chaos.delivered), "redelivered": len(chaos.redelivered),
                      "returned": len(chaos.returned)},
    }


def _held_seconds(session: Replay) -> float:
    return session.clock.held_seconds if isinstance(session.clock, PacedClock) else 0.0


def render(result: dict[str, Any], faults: FaultLog, plans: int) -> str:
    lines = ["=" * 88, f"Chaos run: {plans} shipments, calm run against faulted run", "=" * 88]

    def row(label: str, value: Any, indent: int = 0) -> None:
        lines.append(f"{'  ' * indent}{label:<{70 - 2 * indent}} {value}")

    row("SIGKILLs (and restarts)", f"{faults.kills}  {dict(faults.killed)}")
    row("Kafka broker restarts", faults.broker_restarts)
    row("PostgreSQL restarts", faults.database_restarts)
    row("SMTP refusing mail (s)", f"{faults.smtp_outage_seconds:.0f}")
    row("simulated time held for owed answers, calm / chaos (s)",
        f"{result['held_seconds']['calm']:.0f} / {result['held_seconds']['chaos']:.0f}")
    row("events observed, calm / chaos", f"{result['events']['calm']} / {result['events']['chaos']}")
    row("delivered / redelivered / returned (chaos)", " / ".join(str(v) for v in result["shipments"].values()))
    for group in ("lost", "duplicated", "differing"):
        row(group, sum(result[group].values()))
        for key, value in result[group].items():
            row(key, value, 1)
    row("emails repeated after a crash, detected and counted",
        result["emails repeated after a crash, detected and counted"])
    lines.append("=" * 88)
    return "\n".join(lines)


async def main_async(argv: list[str]) -> int:
    args = arguments(argv)
    env = stack_environment()
    base, _ = plan_orders(load_orders(DEFAULT_DATA), args.first, args.last, args.seed)
    plans = copied_plans(base, args.copies)
    common = {"seconds_per_day": args.seconds_per_day, "instances": args.instances, "paced": True,
              "wait_seconds": 300.0,  # past a broker restart and the SMTP outage with room to spare
              "extra_env": {"OTP_CONSUMER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS)}}
    print(f"chaos: {len(plans)} shipments ({args.copies} copies of {len(base)}), calm run first", flush=True)
    calm_session = await replay(plans, env, ReplayOptions(label="calm", **common))  # type: ignore[arg-type]
    faults = FaultLog()
    print("chaos: faulted run", flush=True)
    chaos_session = await replay(plans, env, ReplayOptions(label="chaos", **common),  # type: ignore[arg-type]
                                 during=chaos_driver(args, faults))
    result = compare(outcome_of(calm_session), outcome_of(chaos_session), chaos_session,
                     await detected_repeats(chaos_session))
    result["faults"] = {"kills": faults.kills, "killed": dict(faults.killed),
                        "broker_restarts": faults.broker_restarts, "database_restarts": faults.database_restarts,
                        "smtp_outage_seconds": round(faults.smtp_outage_seconds)}
    result["held_seconds"] = {"calm": _held_seconds(calm_session), "chaos": _held_seconds(chaos_session)}
    result["namespaces"] = {"calm": calm_session.namespace, "chaos": chaos_session.namespace}
    print(render(result, faults, len(plans)))
    args.report_dir.mkdir(parents=True, exist_ok=True)
    path = args.report_dir / f"chaos-{chaos_session.namespace}.json"
    path.write_text(json.dumps(result, indent=2, default=str))
    print(f"report written to {path}")
    broken = sum(result["lost"].values()) + sum(result["duplicated"].values()) + sum(result["differing"].values())
    enough = (faults.kills >= args.kills and faults.broker_restarts >= args.broker_restarts
              and faults.database_restarts >= args.database_restarts)
    if not enough:
        print("chaos: the run ended before every planned fault happened", file=sys.stderr)
    return 0 if broken == 0 and enough else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main_async(sys.argv[1:])))
