"""`python -m demo.audit [demo options]`: where did the codes go? Runs the demo, then
looks for every code found in the delivered emails in every topic's raw bytes, in a full
dump of the run's database schemas and in every service log.

The codes may be in the emails (and the customer's tracking view) only: any hit
elsewhere is an exposure and the audit exits 1. The emails themselves are scanned too,
as a positive control: if the scan finds no code there, it is broken, not clean.

A match must stand alone (not inside a longer run of letters, digits or base64, not a
timestamp's fraction after a dot), so that hex digests, base64 blobs and microseconds do
not count as leaks by chance.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from aiokafka import AIOKafkaConsumer, TopicPartition

from demo.__main__ import arguments, run
from demo.mailbox import MailboxReader
from shared.events import Topics
from stack.environment import PROJECT_ROOT, stack_environment

__all__ = ["AuditResult", "code_pattern", "scan"]


def code_pattern(codes: Iterable[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted({re.escape(code) for code in codes}, key=len, reverse=True))
    return re.compile(rf"(?<![\w+/.:-])(?:{alternatives})(?![\w+/=])")


def scan(text: str, pattern: re.Pattern[str]) -> Counter[str]:
    return Counter(match.group(0) for match in pattern.finditer(text))


@dataclass
class AuditResult:
    codes: int = 0
    scanned_bytes: Counter[str] = field(default_factory=Counter)
    hits: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, source: str, text: str, pattern: re.Pattern[str], where: str) -> None:
        self.scanned_bytes[source] += len(text)
        found = scan(text, pattern)
        if found:
            self.hits[source] += sum(found.values())
            if source != "emails" and len(self.examples) < 10:
                self.examples.append(f"{source}: {where}")

    @property
    def exposures(self) -> int:
        return sum(count for source, count in self.hits.items() if source != "emails")


async def scan_topics(bootstrap: str, topics: Topics, pattern: re.Pattern[str], result: AuditResult) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in topics.all_topics()
                      for p in (consumer.partitions_for_topic(topic) or await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batch.items():
                for record in records:
                    parts = [record.key or b"", record.value or b""] + [v for _, v in record.headers]
                    text = b"\n".join(parts).decode("latin-1")
                    result.add("topics", text, pattern, f"{tp.topic}[{tp.partition}]@{record.offset}")
                    if record.offset + 1 >= ends[tp]:
                        remaining.discard(tp)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 - no public call refreshes one topic
    return consumer.partitions_for_topic(topic) or set()


def dump_database(dsn: str, namespace: str) -> str:
    """pg_dump of the run's schemas; the password goes through the environment, not argv."""
    parts = urlsplit(dsn)
    password = parts.password or ""
    netloc = f"{parts.username}@{parts.hostname}:{parts.port}"
    pg_dump = shutil.which("pg_dump") or "/usr/lib/postgresql/15/bin/pg_dump"
    completed = subprocess.run(  # noqa: S603 - fixed binary, DSN from our own settings
        [pg_dump, "--no-owner", f"--schema={namespace}_*",
         "--dbname", urlunsplit((parts.scheme, netloc, parts.path, "", ""))],
        env={**os.environ, "PGPASSWORD": password}, capture_output=True, check=True)
    return completed.stdout.decode("utf-8", errors="replace")


def scan_logs(paths: Iterable[Path], pattern: re.Pattern[str], result: AuditResult) -> None:
    for path in paths:
        if path.is_file():
            result.add("logs", path.read_text(errors="replace"), pattern, str(path.relative_to(PROJECT_ROOT)))


def scan_emails(maildir: Path, run_tag: str, pattern: re.Pattern[str], result: AuditResult) -> None:
    for folder in ("new", "cur"):
        for path in sorted((maildir / folder).glob("*")):
            raw = path.read_bytes().decode("latin-1")
            if f"X-Delivery-Code-Id: {run_tag}-" in raw:
                result.add("emails", raw.replace("=\r\n", "").replace("=\n", ""), pattern, path.name)


async def audit(namespace: str, run_tag: str, env: dict[str, str]) -> AuditResult:
    mailbox = MailboxReader(Path(env["OTP_MAILDIR"]), code_id_prefix=f"{run_tag}-")
    mailbox.poll()
    codes = {received.code for copies in mailbox.by_code_id.values() for received in copies}
    result = AuditResult(codes=len(codes))
    if not codes:
        return result
    pattern = code_pattern(codes)
    scan_emails(Path(env["OTP_MAILDIR"]), run_tag, pattern, result)
    await scan_topics(env["OTP_KAFKA_BOOTSTRAP"], Topics(namespace), pattern, result)
    result.add("database", dump_database(env["OTP_PG_DSN"], namespace), pattern, f"pg_dump of {namespace}_*")
    logs = PROJECT_ROOT / ".stack" / "logs"
    scan_logs([*sorted((logs / namespace).glob("*.log")), *sorted(logs.glob("*.log"))], pattern, result)
    return result


def render(result: AuditResult) -> str:
    lines = ["=" * 78, "Code exposure audit", "=" * 78,
             f"{'codes found in delivered emails':<58} {result.codes}"]
    for source in ("emails", "topics", "database", "logs"):
        allowed = " (allowed: where the codes belong)" if source == "emails" else ""
        lines.append(f"{source + ' scanned (bytes)':<58} {result.scanned_bytes[source]}")
        lines.append(f"{'  code hits in ' + source + allowed:<58} {result.hits[source]}")
    lines.append(f"{'EXPOSURES outside the emails':<58} {result.exposures}")
    lines += [f"      e.g. {example}" for example in result.examples]
    lines.append("=" * 78)
    return "\n".join(lines)


async def main_async(argv: list[str]) -> int:
    demo = await run(arguments(argv))
    if demo.exit_code != 0 or not demo.namespace:
        print("the demo failed; auditing what it left", file=sys.stderr)
    if not demo.namespace:
        return 1
    result = await audit(demo.namespace, demo.run_tag, stack_environment())
    print(render(result))
    if result.codes == 0 or result.hits["emails"] < result.codes:
        print("audit is blind: it did not find the codes in the emails themselves", file=sys.stderr)
        return 1
    return 1 if result.exposures or demo.exit_code else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main_async(sys.argv[1:])))
