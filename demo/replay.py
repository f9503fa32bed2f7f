"""One replay of planned orders through freshly started services, on a shared clock.

Used by the demo (`python -m demo`) and by the chaos run (`python -m demo.chaos`), which
replays the same plans twice, once with faults injected through `during`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from decimal import Decimal
from pathlib import Path

from demo.doorstep import Doorstep
from demo.mailbox import MailboxReader
from demo.orders import OrderPlan
from demo.pacing import PacedClock, Pacer
from demo.tap import TopicTap
from shared.clock import Clock, ScaledClock
from shared.crypto import load_keyring
from shared.events import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import create_producer
from stack.environment import PROJECT_ROOT
from stack.services import ServiceProcesses

__all__ = ["Replay", "ReplayOptions", "replay"]

START_GRACE_SECONDS = 12.0  # the services start before simulated time begins


@dataclass(frozen=True)
class ReplayOptions:
    seconds_per_day: float = 1.0
    instances: int = 1
    threshold: Decimal = Decimal("100.00")
    max_delivery_days: int = 4
    label: str = "demo"
    paced: bool = False  # hold simulated time while the system owes the doorstep an answer (see demo.pacing)
    pacing_grace: timedelta = timedelta(hours=1)
    wait_seconds: float = 60.0
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Replay:
    namespace: str
    run_tag: str
    options: ReplayOptions
    env: dict[str, str]
    clock: Clock
    clock_file: Path | None
    services: ServiceProcesses
    tap: TopicTap
    doorstep: Doorstep
    mailbox: MailboxReader
    log_dir: Path
    exit_codes: dict[str, int | None] = field(default_factory=dict)


async def _progress(replay: Replay, total: int, stop: asyncio.Event) -> None:
    started = time.monotonic()
    doorstep = replay.doorstep
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except TimeoutError:
            pass
        held = ""
        if isinstance(replay.clock, PacedClock):
            held = f"  held {replay.clock.held_seconds:.0f}s{' (now)' if replay.clock.holds else ''}"
        simulated = replay.clock.now().astimezone(UTC)
        print(f"  [{time.monotonic() - started:5.0f}s] simulated {simulated:%Y-%m-%d %H:%M} UTC  "
              f"dispatched {len(doorstep.dispatch_wall)}/{total}  settled {len(doorstep.outcomes)}  "
              f"attempts {len(doorstep.attempts)}{held}", flush=True)


def _service_env(env: dict[str, str], namespace: str, options: ReplayOptions, speed: float,
                 clock_settings: dict[str, str]) -> dict[str, str]:
    return {
        **env,
        **clock_settings,
        "OTP_NAMESPACE": namespace,
        "OTP_ISSUER_THRESHOLDS": json.dumps({"BRL": str(options.threshold)}),
        "OTP_ISSUER_CODE_CARRIERS": "own-fleet",
        "OTP_ISSUER_MAX_DELIVERY_DAYS": str(options.max_delivery_days),
        # Three simulated hours: at demo speed that is a fraction of a second of real lag.
        "OTP_VERIFIER_MAX_ATTEMPT_LAG_SECONDS": "10800",
        "OTP_SCHEDULER_TICK_SECONDS": "0.02",
        # A deferred email is retried within seconds: a simulated day lasts about one.
        "OTP_NOTIFIER_DEFER_BASE_SECONDS": "0.5",
        "OTP_NOTIFIER_DEFER_MAX_SECONDS": "3",
        **options.extra_env,
    }


def quiet_client_logs() -> None:
    """Broker restarts make aiokafka log every reconnect; the run reports what matters."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


async def replay(
    plans: list[OrderPlan],
    env: dict[str, str],
    options: ReplayOptions,
    during: Callable[[Replay, asyncio.Event], Awaitable[None]] | None = None,
) -> Replay:
    quiet_client_logs()
    run_tag = secrets.token_hex(3)
    namespace = f"{options.label}{run_tag}"
    speed = 86400.0 / options.seconds_per_day
    start = min(plan.dispatched_at for plan in plans).astimezone(UTC) - timedelta(hours=1)
    anchor = time.time() + START_GRACE_SECONDS
    log_dir = PROJECT_ROOT / ".stack" / "logs" / namespace
    log_dir.mkdir(parents=True, exist_ok=True)
    clock: Clock
    clock_file: Path | None = None
    if options.paced:
        clock_file = log_dir / "clock.json"
        clock = PacedClock(clock_file, start, anchor, speed)
        clock_settings = {"OTP_CLOCK_FILE": str(clock_file)}
    else:
        clock = ScaledClock(start, anchor, speed)
        clock_settings = {"OTP_CLOCK_START": start.isoformat(), "OTP_CLOCK_ANCHOR_UNIX": repr(anchor),
                          "OTP_CLOCK_SPEED": repr(speed)}
    topics = Topics(namespace)
    kafka: dict[str, object] = {"bootstrap_servers": env["OTP_KAFKA_BOOTSTRAP"]}
    await ensure_topics(kafka, topics.all_topics(), 6)
    services = ServiceProcesses(env=_service_env(env, namespace, options, speed, clock_settings), log_dir=log_dir,
                                instances=options.instances)
    services.start()
    producer = create_producer(kafka, client_id=f"{namespace}-gateway")
    await producer.start()
    mailbox = MailboxReader(Path(env["OTP_MAILDIR"]), code_id_prefix=f"{run_tag}-")
    tap = TopicTap(kafka, topics)
    doorstep = Doorstep(producer, clock, topics, load_keyring(Path(env["OTP_ATTEMPT_KEYS_FILE"]),
                                                              "OTP_ATTEMPT_KEYS_FILE"), mailbox, run_tag,
                        wait_seconds=options.wait_seconds)
    tap.listeners.append(doorstep.observe)
    session = Replay(namespace, run_tag, options, env, clock, clock_file, services, tap, doorstep, mailbox, log_dir)
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(services.wait_started)
        helpers = [asyncio.create_task(tap.run(stop)), asyncio.create_task(doorstep.poll_mailbox(stop)),
                   asyncio.create_task(_progress(session, len(plans), stop))]
        if isinstance(clock, PacedClock):
            pacer = Pacer(clock, doorstep, options.pacing_grace)
            helpers += [asyncio.create_task(clock.run(stop)), asyncio.create_task(pacer.run(stop))]
        if during is not None:
            helpers.append(asyncio.create_task(during(session, stop)))
        await asyncio.gather(*(doorstep.run_shipment(plan) for plan in plans))
        await asyncio.sleep(1.0)  # the last NotificationSent and decisions reach the tap
        stop.set()
        await asyncio.gather(*helpers)
        mailbox.poll()
    finally:
        stop.set()
        await producer.stop()
        session.exit_codes = await asyncio.to_thread(services.stop)
    return session
