"""The local stack's environment for Python entry points (demo, tests, tools).

`stack/env.sh` is the one place that defines ports, DSNs and dev secrets; this runs it
in a shell and takes the variables it exports, so Python and make agree.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

__all__ = ["PROJECT_ROOT", "stack_environment"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def stack_environment() -> dict[str, str]:
    output = subprocess.run(  # noqa: S603 - fixed command, no user input
        ["/bin/sh", "-c", ". stack/env.sh && env -0"],  # noqa: S607
        cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True, check=True,
    ).stdout
    pairs = (item.split("=", 1) for item in output.decode().split("\0") if "=" in item)
    return {key: value for key, value in pairs if key.startswith("OTP_")}
