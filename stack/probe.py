"""One-shot readiness probes used by stack.sh; exit 0 when the service is usable.

An open port is not enough for Kafka: the broker accepts connections before
its metadata is loaded, so we ask for the topic list like a real client would.

    python -m stack.probe kafka 127.0.0.1:19092
    python -m stack.probe smtp 127.0.0.1 2525
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import sys

PROBE_TIMEOUT_S = 5.0


async def _kafka(bootstrap: str) -> None:
    # Imported lazily so the SMTP probe does not pay for aiokafka's import.
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=4000)
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


def kafka(bootstrap: str) -> None:
    asyncio.run(asyncio.wait_for(_kafka(bootstrap), PROBE_TIMEOUT_S))


def smtp(host: str, port: int) -> None:
    with smtplib.SMTP(host, port, timeout=PROBE_TIMEOUT_S) as client:
        code, _ = client.ehlo("stack-probe")
        if code != 250:
            raise RuntimeError(f"EHLO answered {code}")


def main(argv: list[str]) -> int:
    # aiokafka logs every refused connection itself; while the broker boots
    # that is expected noise, and our one-line summary says enough.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        if argv[:1] == ["kafka"] and len(argv) == 2:
            kafka(argv[1])
        elif argv[:1] == ["smtp"] and len(argv) == 3:
            smtp(argv[1], int(argv[2]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Exception as exc:  # noqa: BLE001 - any failure just means "not ready yet"
        print(f"not ready: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
