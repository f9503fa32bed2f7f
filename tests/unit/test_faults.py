"""Crash points (shared/faults.py): inert unless armed, fire once per marker directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.faults import CRASH_EXIT_CODE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "from shared.faults import crash_point; crash_point('a.b'); crash_point('c.d'); print('ran on')"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTP_CRASH_")}
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env={**clean, **env},  # noqa: S603
                          capture_output=True, text=True, timeout=30, check=False)


def test_inert_unless_armed():
    assert _run().stdout.strip() == "ran on"
    assert _run(OTP_CRASH_AT=" , ").stdout.strip() == "ran on"


def test_points_armed_elsewhere_run_on(tmp_path: Path):
    assert _run(OTP_CRASH_AT="x.y, other", OTP_CRASH_MARKER_DIR=str(tmp_path)).stdout.strip() == "ran on"
    assert list(tmp_path.iterdir()) == []


def test_an_armed_point_kills_once_per_marker_directory(tmp_path: Path):
    first = _run(OTP_CRASH_AT="other,c.d", OTP_CRASH_MARKER_DIR=str(tmp_path))
    assert first.returncode == CRASH_EXIT_CODE and first.stdout == ""
    assert (tmp_path / "c.d").is_file()
    again = _run(OTP_CRASH_AT="other,c.d", OTP_CRASH_MARKER_DIR=str(tmp_path))
    assert again.returncode == 0 and again.stdout.strip() == "ran on"


def test_armed_without_a_marker_directory_stops_loudly(tmp_path: Path):
    for env in ({}, {"OTP_CRASH_MARKER_DIR": str(tmp_path / "missing")}):
        result = _run(OTP_CRASH_AT="x.y", **env)  # at the first call, even of a point not armed
        assert result.returncode == 1 and "OTP_CRASH_MARKER_DIR" in result.stderr and result.stdout == ""
