"""The demo's mailbox reader: each message once, from the sink's journal or a listing."""

from __future__ import annotations

import mailbox
from pathlib import Path

from demo.mailbox import MailboxReader
from stack.smtp_sink import DELIVERY_JOURNAL


def _message(code_id: str, code: str) -> bytes:
    return (f"X-Sink-Received-At: 2018-01-02T10:00:00+00:00\nX-Delivery-Code-Id: {code_id}\n"
            f"Message-ID: <{code_id}@example>\nTo: someone@customers.example\nContent-Language: en\n"
            f"Content-Type: text/plain; charset=utf-8\n\nYour code:\n\n    {code}\n\nThanks\n").encode()


def _store(root: Path, raw: bytes, journal: bool, code_id: str = "") -> str:
    key = mailbox.Maildir(root / "Maildir", factory=None, create=True).add(raw)
    if journal:
        with (root / DELIVERY_JOURNAL).open("a") as file:
            file.write(f"{key} {code_id}\n" if code_id else f"{key}\n")
    return key


def test_reads_each_of_its_own_messages_once_from_the_journal(tmp_path):
    _store(tmp_path, _message("run1-s1.d1", "123456"), journal=True)
    _store(tmp_path, _message("other-s9.d1", "999999"), journal=True)
    reader = MailboxReader(tmp_path / "Maildir", code_id_prefix="run1-")
    first = reader.poll()
    assert [(item.code_id, item.code) for item in first] == [("run1-s1.d1", "123456")]
    assert reader.poll() == []
    _store(tmp_path, _message("run1-s2.d1", "654321"), journal=True)
    assert [item.code for item in reader.poll()] == ["654321"]
    assert reader.by_code_id.keys() == {"run1-s1.d1", "run1-s2.d1"}


def test_a_journal_line_is_taken_only_once_it_is_complete(tmp_path):
    _store(tmp_path, _message("run1-s1.d1", "123456"), journal=False)
    key = next((tmp_path / "Maildir" / "new").iterdir()).name
    journal = tmp_path / DELIVERY_JOURNAL
    journal.write_text(key[:5])
    reader = MailboxReader(tmp_path / "Maildir", code_id_prefix="run1-")
    assert reader.poll() == []
    journal.write_text(key + "\n")
    assert [item.code for item in reader.poll()] == ["123456"]
    assert reader.poll() == []


def test_without_a_journal_it_lists_the_folders(tmp_path):
    _store(tmp_path, _message("run1-s1.d1", "123456"), journal=False)
    reader = MailboxReader(tmp_path / "Maildir", code_id_prefix="run1-")
    assert [item.code for item in reader.poll()] == ["123456"]
    assert reader.poll() == []


def test_another_runs_message_named_in_the_journal_is_skipped(tmp_path):
    other = _store(tmp_path, _message("other-s9.d1", "999999"), journal=True, code_id="other-s9.d1")
    (tmp_path / "Maildir" / "new" / other).write_bytes(b"not an email at all")  # would not parse
    _store(tmp_path, _message("run1-s1.d1", "123456"), journal=True, code_id="run1-s1.d1")
    reader = MailboxReader(tmp_path / "Maildir", code_id_prefix="run1-")
    assert [item.code_id for item in reader.poll()] == ["run1-s1.d1"]
