"""Reads the SMTP sink's Maildir the way a customer reads their inbox.

The simulated customer learns a code only here: from the plain-text part of the email
that the notifier sent through the real SMTP server.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path

from stack.smtp_sink import DELIVERY_JOURNAL

__all__ = ["MailboxReader", "ReceivedCode", "code_from_text"]

_CODE_LINE = re.compile(r"^[ \t]{2,}(\d{4,12})[ \t]*\r?$", re.MULTILINE)


@dataclass(frozen=True)
class ReceivedCode:
    code_id: str
    code: str
    message_id: str
    received_at: datetime
    recipient: str
    language: str
    file: str


def code_from_text(text: str) -> str | None:
    found = _CODE_LINE.findall(text)
    return found[0] if len(found) == 1 else None


class MailboxReader:
    """Incremental: each `poll` parses only the messages it has not seen before.

    With the sink's delivery journal next to the Maildir it reads only the journal's new
    lines; without one (another server's Maildir) it lists new/ and cur/.
    """

    def __init__(self, maildir: Path, code_id_prefix: str) -> None:
        self._new = maildir / "new"
        self._cur = maildir / "cur"
        self._journal = maildir.parent / DELIVERY_JOURNAL
        self._journal_offset = 0
        self._prefix = code_id_prefix
        self._seen: set[str] = set()
        self.by_code_id: dict[str, list[ReceivedCode]] = {}

    def poll(self) -> list[ReceivedCode]:
        fresh: list[ReceivedCode] = []
        for path in self._journal_paths() if self._journal.exists() else self._listed_paths():
            received = self._read(path)
            if received is not None:
                self.by_code_id.setdefault(received.code_id, []).append(received)
                fresh.append(received)
        return fresh

    def _journal_paths(self) -> list[Path]:
        with self._journal.open("rb") as journal:
            if journal.seek(0, os.SEEK_END) < self._journal_offset:
                self._journal_offset = 0  # the stack was reset: a new journal
            journal.seek(self._journal_offset)
            chunk = journal.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self._journal_offset += len(complete)
        paths = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            key, _, code_id = line.partition(" ")
            if not key or key in self._seen:
                continue
            self._seen.add(key)
            if code_id and code_id != "-" and not code_id.startswith(self._prefix):
                continue  # another run's message: not worth opening
            paths.append(self._new / key)
        return paths

    def _listed_paths(self) -> list[Path]:
        paths = []
        for folder in (self._new, self._cur):
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                names = [entry.name for entry in entries if entry.name not in self._seen]
            self._seen.update(names)
            paths += [folder / name for name in names]
        return paths

    def _read(self, path: Path) -> ReceivedCode | None:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        code_id = str(message.get("X-Delivery-Code-Id", ""))
        if not code_id.startswith(self._prefix):
            return None
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        code = code_from_text(text)
        if code is None:
            return None
        return ReceivedCode(
            code_id=code_id,
            code=code,
            message_id=str(message.get("Message-ID", "")),
            received_at=datetime.fromisoformat(str(message.get("X-Sink-Received-At"))),
            recipient=str(message.get("To", "")),
            language=str(message.get("Content-Language", "")),
            file=path.name,
        )
