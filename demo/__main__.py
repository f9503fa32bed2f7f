"""`python -m demo`: replays real Olist orders through the running services.

    python -m demo [--from 2018-01-01] [--to 2018-04-30] [--orders N] [--seconds-per-day 1.0]
                   [--instances 1] [--threshold 100.00] [--max-delivery-days 4] [--seed demo]

Needs the local stack (`make up`). Starts the four services as processes in a fresh
namespace (topics and schemas of their own), plays upstream and the courier gateway
on a sped-up shared clock, prints a report and writes it as JSON. Exits 1 when an
invariant breaks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from demo.orders import DEFAULT_DATA, load_orders, plan_orders
from demo.replay import ReplayOptions, replay
from demo.report import build_report, render_table
from stack.environment import PROJECT_ROOT, stack_environment


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--from", dest="first", type=date.fromisoformat, default=date(2018, 1, 1),
                        help="first carrier hand-off date to replay (default 2018-01-01)")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, default=date(2018, 4, 30),
                        help="last carrier hand-off date to replay (default 2018-04-30)")
    parser.add_argument("--orders", type=int, default=None, help="at most this many orders")
    parser.add_argument("--seconds-per-day", type=float, default=1.0, help="real seconds per simulated day")
    parser.add_argument("--instances", type=int, default=1, help="instances of every service (default 1)")
    parser.add_argument("--threshold", type=Decimal, default=Decimal("100.00"),
                        help="BRL items value from which a parcel needs a code (default 100.00)")
    parser.add_argument("--max-delivery-days", type=int, default=4, help="delivery days before a return")
    parser.add_argument("--seed", default="demo", help="fixes every per-order choice")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--report-dir", type=Path, default=PROJECT_ROOT / "reports")
    args = parser.parse_args(argv)
    if args.first > args.last:
        parser.error(f"--from {args.first} is after --to {args.last}")
    return args


@dataclass(frozen=True)
class DemoRun:
    exit_code: int
    namespace: str
    run_tag: str


async def run(args: argparse.Namespace) -> DemoRun:
    env = stack_environment()
    plans, summary = plan_orders(load_orders(args.data), args.first, args.last, args.seed, args.orders)
    if not plans:
        print(f"no orders were handed to the carrier between {args.first} and {args.last}", file=sys.stderr)
        return DemoRun(2, "", "")
    options = ReplayOptions(seconds_per_day=args.seconds_per_day, instances=args.instances,
                            threshold=args.threshold, max_delivery_days=args.max_delivery_days)
    print(f"demo: {len(plans)} shipments handed to the carrier {args.first} .. {args.last}, "
          f"{args.seconds_per_day}s per simulated day, {args.instances} instance(s) per service")
    session = await replay(plans, env, options)
    report = build_report(
        plans, summary, session.tap, session.doorstep, session.mailbox, args.threshold, {"own-fleet"},
        settings={"namespace": session.namespace, "from": str(args.first), "to": str(args.last),
                  "seconds_per_simulated_day": args.seconds_per_day, "instances": args.instances,
                  "max_delivery_days": args.max_delivery_days, "seed": args.seed,
                  "service_exit_codes": session.exit_codes},
        exit_codes=session.exit_codes,
    )
    print(render_table(report))
    args.report_dir.mkdir(parents=True, exist_ok=True)
    path = args.report_dir / f"demo-{session.namespace}.json"
    path.write_text(json.dumps({**report.figures, "breaches": report.breaches}, indent=2, default=str))
    print(f"report written to {path}; service logs in {session.log_dir}")
    return DemoRun(0 if report.ok else 1, session.namespace, session.run_tag)


def main() -> None:
    sys.exit(asyncio.run(run(arguments(sys.argv[1:]))).exit_code)


if __name__ == "__main__":
    main()
