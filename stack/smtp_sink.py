"""Local SMTP sink for development and tests.

Accepts every message for any recipient and drops it into a Maildir, so tests
can read what the notifier "sent" without a real mail server. A file named
``refuse`` next to the Maildir makes the sink answer 451 to every RCPT/DATA,
which lets outage tests exercise the sender's retry path without killing the
process.

    python -m stack.smtp_sink --host 127.0.0.1 --port 2525 --maildir .stack/mail/Maildir
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mailbox
import signal
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

log = logging.getLogger("smtp_sink")

REFUSAL = "451 4.3.0 temporarily refusing mail"
# One line per stored message, appended once the message is in new/: its Maildir key and
# its X-Delivery-Code-Id (an id, never the code), so a reader tails one file and opens
# only its own messages instead of listing and parsing a folder of tens of thousands.
DELIVERY_JOURNAL = "delivered.keys"


class MaildirSink:
    """aiosmtpd handler: store every accepted message, unless told to refuse."""

    def __init__(self, maildir: Path) -> None:
        # mailbox.Maildir(create=True) only makes tmp/ new/ cur/ when the
        # top folder is missing; an empty pre-made folder would stay unusable
        # for readers, so make the three subfolders ourselves.
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        self._box = mailbox.Maildir(maildir, factory=None, create=False)
        # The switch lives outside the Maildir so that Maildir readers never
        # see a stray file among the messages.
        self._refuse_flag = maildir.parent / "refuse"
        self._journal = maildir.parent / DELIVERY_JOURNAL

    def refusing(self) -> bool:
        # Checked on every command rather than cached, so a test can flip it
        # mid-run and the very next RCPT sees the change.
        return self._refuse_flag.exists()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.refusing():
            log.info("refused rcpt=%s (refuse switch is on)", address)
            return REFUSAL
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # Refusal may have been switched on between RCPT and DATA.
        if self.refusing():
            log.info("refused data rcpt=%s (refuse switch is on)", ",".join(envelope.rcpt_tos))
            return REFUSAL
        raw = envelope.original_content or b""
        stamped = _prepend_header(raw, "X-Sink-Received-At", datetime.now(UTC).isoformat())
        # Maildir.add writes into tmp/ and then moves the file into new/, so a
        # reader polling new/ never sees a half-written message.
        key = self._box.add(stamped)
        headers = BytesHeaderParser().parsebytes(raw)
        code_id = "".join(str(headers.get("X-Delivery-Code-Id", "-")).split()) or "-"
        with self._journal.open("a", encoding="utf-8") as journal:
            journal.write(f"{key} {code_id}\n")
        # Only the Message-ID and recipients: bodies carry one-time codes and
        # must not end up in a log file.
        log.info(
            "stored message_id=%s rcpt=%s key=%s",
            headers.get("Message-ID", "-"),
            ",".join(envelope.rcpt_tos),
            key,
        )
        return "250 Message accepted for delivery"


def _prepend_header(raw: bytes, name: str, value: str) -> bytes:
    # Keep the message byte-for-byte as received; only match its line ending
    # so the header block stays consistent.
    eol = b"\r\n" if b"\r\n" in raw[:1000] or not raw else b"\n"
    return f"{name}: {value}".encode("ascii") + eol + raw


async def serve(host: str, port: int, maildir: Path) -> None:
    handler = MaildirSink(maildir)
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        # A fixed hostname avoids socket.getfqdn(), which can hang for
        # seconds on machines without working DNS.
        return SMTP(handler, hostname="smtp-sink.local", enable_SMTPUTF8=True)

    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("listening on %s:%d, maildir=%s", host, port, maildir)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        server.close()
        # Newer Pythons wait here for open client connections; an idle
        # client must not be able to keep the sink alive after SIGTERM.
        try:
            await asyncio.wait_for(server.wait_closed(), timeout=5)
        except TimeoutError:
            log.warning("clients still connected at shutdown; closing anyway")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local SMTP sink writing to a Maildir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # aiosmtpd logs every SMTP command at INFO (including the peer's data
    # lengths and addresses); our own one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    asyncio.run(serve(args.host, args.port, args.maildir.resolve()))


if __name__ == "__main__":
    main()
