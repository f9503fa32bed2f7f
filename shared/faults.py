"""Crash points: deliberate failure windows, so tests can kill a service between two effects.

The README's table "Consistency, and the failure windows" claims what happens when a
process dies at certain moments: after a commit but before the relay published, after
the broker acknowledged but before the outbox rows were deleted, after SMTP accepted an
email but before `sent` was recorded. A SIGKILL from outside cannot hit such a moment
reliably, so the code marks each window with a named point:

    crash_point("outbox.after_commit")

A point is inert unless armed. `OTP_CRASH_AT` names the armed points (comma-separated);
unset or empty, `crash_point` is a dictionary lookup and nothing else. An armed point
kills the process on the spot with `os._exit(86)`: no `finally`, no flushing, no
SIGTERM handling, as if the machine had lost power between the two effects.

Each point fires once per marker directory (`OTP_CRASH_MARKER_DIR`, required when a
point is armed; without it the first `crash_point` call stops the process
with a message): before dying, the process creates `<dir>/<point>` with
`O_CREAT | O_EXCL`. A restarted process with the same environment finds the marker and
runs on normally, which is what the test then checks: the recovery. Several processes
sharing one marker directory race on the atomic create, so exactly one of them dies.

The environment is read at the first call, not at import, and cached.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

__all__ = ["CRASH_EXIT_CODE", "crash_point"]

CRASH_EXIT_CODE = 86


@cache
def _armed() -> tuple[frozenset[str], Path | None]:
    """The armed points and the marker directory, read from the environment at the first call."""
    armed = frozenset(name.strip() for name in os.environ.get("OTP_CRASH_AT", "").split(",") if name.strip())
    if not armed:
        return armed, None
    value = os.environ.get("OTP_CRASH_MARKER_DIR", "")
    if not value or not Path(value).is_dir():
        # SystemExit, not an Exception: the consumer loop would take an exception for a poison
        # message (and dead-letter the event), and the outbox relay would retry it forever.
        raise SystemExit(
            f"OTP_CRASH_AT={os.environ.get('OTP_CRASH_AT')!r} needs OTP_CRASH_MARKER_DIR to name an existing "
            f"directory (got {value!r})"
        )
    return armed, Path(value)


def crash_point(name: str) -> None:
    """Dies here with exit code 86 if `OTP_CRASH_AT` names this point and it has not fired yet."""
    armed, markers = _armed()
    if name not in armed or markers is None:
        return
    try:
        fd = os.open(markers / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # fired once already: the restarted process runs on
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os._exit(CRASH_EXIT_CODE)
