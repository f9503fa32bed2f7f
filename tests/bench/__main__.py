"""`make bench`: the shared runtime's per-event costs, measured side by side in one run.

    python -m tests.bench [--events 600] [--rounds 5]

- **unit of work**: one consumed event's transaction (inbox claim, one outbox row,
  commit) on the real PostgreSQL, with the pool's lean release against asyncpg's
  default reset query. The two alternate round by round, so a noisy neighbour slows
  both alike; the ratio is what to read, not the absolute rate.
- **codec**: strict decode and encode of a `ShipmentDispatched` envelope, in process.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import asyncpg

from shared.events import Envelope, Recipient, ShipmentDispatched, Topics, encode
from shared.events.registry import decode
from shared.postgres.migrations import RUNTIME_MIGRATIONS, apply_migrations
from shared.postgres.pool import create_pool
from shared.postgres.unit_of_work import unit_of_work_factory
from stack.environment import stack_environment


def _dispatched(number: int) -> Envelope:
    event = ShipmentDispatched(
        shipment_id=f"bench-{number}", order_reference=f"REF{number:08d}",
        dispatched_at=datetime(2018, 1, 2, 9, tzinfo=UTC), delivery_date=date(2018, 1, 3),
        delivery_zone="America/Sao_Paulo", goods_value=Decimal("250.00"), currency="BRL", carrier="own-fleet",
        recipient=Recipient(name="Cliente Bench", email=f"c{number}@customers.example", locale="pt-BR"),
        neighbour_allowed=True)
    return Envelope.wrap(event, occurred_at=datetime(2018, 1, 2, 9, tzinfo=UTC))


async def _unit_of_work_round(pool: asyncpg.Pool, envelopes: list[Envelope], topic: str) -> float:
    begin = unit_of_work_factory(pool, on_commit=lambda: None)
    started = time.perf_counter()
    for envelope in envelopes:
        async with begin() as uow:
            if await uow.claim(envelope):
                uow.emit(topic, envelope)
    return len(envelopes) / (time.perf_counter() - started)


async def bench_unit_of_work(dsn: str, events: int, rounds: int) -> dict[str, list[float]]:
    schema = f"bench{secrets.token_hex(3)}"
    admin = await asyncpg.connect(dsn)
    try:
        await apply_migrations(admin, schema, {"runtime": RUNTIME_MIGRATIONS})
        pools = {"lean release": await create_pool(dsn, schema, 2, lean=True),
                 "asyncpg default reset": await create_pool(dsn, schema, 2, lean=False)}
        rates: dict[str, list[float]] = {name: [] for name in pools}
        topic = Topics(schema).issuance
        serial = 0
        for _ in range(rounds):
            for name, pool in pools.items():
                envelopes = [_dispatched(serial + n) for n in range(events)]
                serial += events
                rates[name].append(await _unit_of_work_round(pool, envelopes, topic))
        for pool in pools.values():
            await pool.close()
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
    return rates


def bench_codec(events: int) -> tuple[float, float]:
    raw = [encode(_dispatched(n)) for n in range(events)]
    started = time.perf_counter()
    decoded = [decode(item) for item in raw]
    decode_rate = events / (time.perf_counter() - started)
    started = time.perf_counter()
    for envelope, _ in decoded:
        encode(envelope)
    return decode_rate, events / (time.perf_counter() - started)


async def main_async(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600, help="events per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    rates = await bench_unit_of_work(stack_environment()["OTP_PG_DSN"], args.events, args.rounds)
    print(f"unit of work (claim + 1 outbox row + commit), {args.rounds} alternating rounds of {args.events}:")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print(f"  {name:<24} median {medians[name]:7.0f} events/s   rounds: "
              + " ".join(f"{value:.0f}" for value in values))
    ratios = [lean / default for lean, default in zip(*rates.values(), strict=True)]
    print(f"  lean / default: median {statistics.median(ratios):.2f}x (per round: "
          + " ".join(f"{ratio:.2f}" for ratio in ratios) + ")")
    decode_rate, encode_rate = bench_codec(args.events * 10)
    print(f"codec: strict decode {decode_rate:,.0f}/s, encode {encode_rate:,.0f}/s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main_async(sys.argv[1:])))
