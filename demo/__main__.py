"""`python -m demo`: replays real Olist orders through the running services.

    python -m demo [--from 2018-01-01] [--to 2018-04-30] [--orders N] [--seconds-per-day 1.0]
                   [--instances 1] [--threshold 100.00] [--seed demo]

Needs the local stack (`make up`). Starts the four services as processes in a fresh
namespace (topics and schemas of their own), plays upstream and the courier gateway
on a sped-up shared clock, prints a report and writes it as JSON. Exits 1 when an
invariant breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from decimal import Decimal
from pathlib import Path

from demo.doorstep import Doorstep
from demo.mailbox import MailboxReader
from demo.orders import DEFAULT_DATA, load_orders, plan_orders
from demo.report import build_report, render_table
from demo.tap import TopicTap
from shared.clock import ScaledClock
from shared.crypto import load_keyring
from shared.events import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import create_producer
from stack.environment import PROJECT_ROOT, stack_environment
from stack.services import ServiceProcesses


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2018, 1, 1),
                        help="first carrier hand-off date to replay (default 2018-01-01)")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, default=date(2018, 4, 30),
                        help="last carrier hand-off date to replay (default 2018-04-30)")
    parser.add_argument("--orders", type=int, default=None, help="at most this many orders")
    parser.add_argument("--seconds-per-day", type=float, default=1.0, help="real seconds per simulated day")
    parser.add_argument("--instances", type=int, default=1, help="instances of every service")
    parser.add_argument("--threshold", type=Decimal, default=Decimal("100.00"), help="BRL value needing a code")
    parser.add_argument("--max-delivery-days", type=int, default=4)
    parser.add_argument("--seed", default="demo", help="fixes every per-order choice")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--report-dir", type=Path, default=PROJECT_ROOT / "reports")
    return parser.parse_args(argv)


async def _progress(doorstep: Doorstep, clock: ScaledClock, total: int, stop: asyncio.Event) -> None:
    started = time.monotonic()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except TimeoutError:
            pass
        done = len(doorstep.outcomes)
        print(f"  [{time.monotonic() - started:5.0f}s] simulated {clock.now():%Y-%m-%d %H:%M} UTC  "
              f"dispatched {len(doorstep.dispatch_wall)}/{total}  settled {done}  "
              f"attempts {len(doorstep.attempts)}", flush=True)


@dataclass(frozen=True)
class DemoRun:
    exit_code: int
    namespace: str
    run_tag: str


async def run(args: argparse.Namespace) -> DemoRun:
    env = stack_environment()
    plans, summary = plan_orders(load_orders(args.data), args.first, args.last, args.seed, args.orders)
    if not plans:
        print("no orders were handed to the carrier in that window", file=sys.stderr)
        return DemoRun(2, "", "")
    run_tag = secrets.token_hex(3)
    namespace = f"demo{run_tag}"
    speed = 86400.0 / args.seconds_per_day
    start = min(plan.dispatched_at for plan in plans).astimezone(UTC) - timedelta(hours=1)
    anchor = time.time() + 12.0  # the services' start-up happens before simulated time begins
    clock = ScaledClock(start, anchor, speed)
    service_env = {
        **env,
        "OTP_NAMESPACE": namespace,
        "OTP_CLOCK_START": start.isoformat(),
        "OTP_CLOCK_ANCHOR_UNIX": repr(anchor),
        "OTP_CLOCK_SPEED": repr(speed),
        "OTP_ISSUER_THRESHOLDS": json.dumps({"BRL": str(args.threshold)}),
        "OTP_ISSUER_CODE_CARRIERS": "own-fleet",
        "OTP_ISSUER_MAX_DELIVERY_DAYS": str(args.max_delivery_days),
        "OTP_VERIFIER_MAX_ATTEMPT_LAG_SECONDS": "10800",
        "OTP_SCHEDULER_TICK_SECONDS": "0.02",
    }
    print(f"demo {namespace}: {len(plans)} shipments handed to the carrier {args.first} .. {args.last}, "
          f"{args.seconds_per_day}s per simulated day, {args.instances} instance(s) per service")
    topics = Topics(namespace)
    options: dict[str, object] = {"bootstrap_servers": env["OTP_KAFKA_BOOTSTRAP"]}
    await ensure_topics(options, topics.all_topics(), 6)
    log_dir = PROJECT_ROOT / ".stack" / "logs" / namespace
    services = ServiceProcesses(env=service_env, log_dir=log_dir, instances=args.instances)
    services.start()
    producer = create_producer(options, client_id="demo-gateway")
    await producer.start()
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(services.wait_started)
        mailbox = MailboxReader(Path(env["OTP_MAILDIR"]), code_id_prefix=f"{run_tag}-")
        tap = TopicTap(options, topics)
        doorstep = Doorstep(producer, clock, topics, load_keyring(Path(env["OTP_ATTEMPT_KEYS_FILE"]),
                                                                  "OTP_ATTEMPT_KEYS_FILE"), mailbox, run_tag)
        tap.listeners.append(doorstep.observe)
        helpers = [asyncio.create_task(tap.run(stop)), asyncio.create_task(doorstep.poll_mailbox(stop)),
                   asyncio.create_task(_progress(doorstep, clock, len(plans), stop))]
        await asyncio.gather(*(doorstep.run_shipment(plan) for plan in plans))
        await asyncio.sleep(1.0)  # the last NotificationSent and decisions reach the tap
        stop.set()
        await asyncio.gather(*helpers)
        mailbox.poll()
    finally:
        stop.set()
        await producer.stop()
        exit_codes = await asyncio.to_thread(services.stop)
    unclean = {name: code for name, code in exit_codes.items() if code != 0}
    report = build_report(
        plans, summary, tap, doorstep, mailbox, args.threshold, {"own-fleet"},
        settings={"namespace": namespace, "from": str(args.first), "to": str(args.last),
                  "seconds_per_simulated_day": args.seconds_per_day, "instances": args.instances,
                  "max_delivery_days": args.max_delivery_days, "seed": args.seed,
                  "service_exit_codes": exit_codes},
    )
    if unclean:
        report.breaches["every service stopped cleanly on SIGTERM"] = [f"{n}: {c}" for n, c in unclean.items()]
    else:
        report.breaches["every service stopped cleanly on SIGTERM"] = []
    print(render_table(report))
    args.report_dir.mkdir(parents=True, exist_ok=True)
    path = args.report_dir / f"demo-{namespace}.json"
    path.write_text(json.dumps({**report.figures, "breaches": report.breaches}, indent=2, default=str))
    print(f"report written to {path.relative_to(PROJECT_ROOT)}; service logs in {log_dir.relative_to(PROJECT_ROOT)}")
    return DemoRun(0 if report.ok else 1, namespace, run_tag)


def main() -> None:
    sys.exit(asyncio.run(run(arguments(sys.argv[1:]))).exit_code)


if __name__ == "__main__":
    main()
