"""Domain modules stay pure: no I/O libraries, no environment, no clock, no randomness."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE = sorted(ROOT.glob("services/*/domain.py")) + [ROOT / "shared" / "calendar.py"]
FORBIDDEN_MODULES = {"asyncpg", "aiokafka", "aiosmtplib", "os", "secrets", "random", "socket", "subprocess"}


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(ROOT)))
def test_domain_modules_import_no_io_and_read_no_clock(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
        if isinstance(node, ast.Attribute) and node.attr in {"now", "today", "utcnow"}:
            raise AssertionError(f"{path.name} reads the clock")
