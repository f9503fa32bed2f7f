"""A small chaos run inside the test suite: the same orders calm and under SIGKILLs and an
SMTP outage must give the same outcome, with nothing lost or doubled. (Broker and database
restarts would disturb the other tests sharing the stack; CI runs them with `make chaos`
at a small size after the suite.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from stack.environment import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_a_small_chaos_run_loses_nothing_and_doubles_nothing(stack_env: dict[str, str], tmp_path):
    completed = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "demo.chaos", "--from", "2018-01-01", "--to", "2018-01-10", "--copies", "1",
         "--seconds-per-day", "4", "--kills", "6", "--broker-restarts", "0", "--database-restarts", "0",
         "--smtp-outage-seconds", "5",
         "--report-dir", str(tmp_path)],
        cwd=PROJECT_ROOT, env={**os.environ, **stack_env}, capture_output=True, text=True,
        timeout=900)
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    report = json.loads(next(tmp_path.glob("chaos-*.json")).read_text())
    assert report["faults"]["kills"] >= 6
    assert sum(report["lost"].values()) == sum(report["duplicated"].values()) == 0
    assert sum(report["differing"].values()) == 0
