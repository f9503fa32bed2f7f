"""Starts and stops the four services as real processes, several instances each.

Used by the demo and the integration tests: every instance is `python -m
services.<name>` with the given environment, its output in its own log file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from stack.environment import PROJECT_ROOT

__all__ = ["SERVICES", "ServiceProcesses"]

SERVICES = ("issuer", "notifier", "verifier", "scheduler")


@dataclass
class ServiceProcesses:
    env: dict[str, str]
    log_dir: Path
    instances: int = 1
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, services: tuple[str, ...] = SERVICES) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for service in services:
            for number in range(1, self.instances + 1):
                self.start_instance(service, number)

    def start_instance(self, service: str, number: int) -> subprocess.Popen[bytes]:
        name = f"{service}-{number}"
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", f"services.{service}"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes[name] = process
        return process

    def wait_started(self, timeout: float = 60.0) -> None:
        """Waits until every instance has logged that it runs; raises with its log if one died."""
        deadline = time.monotonic() + timeout
        waiting = set(self.processes)
        while waiting:
            for name in sorted(waiting):
                process = self.processes[name]
                text = (self.log_dir / f"{name}.log").read_text(errors="replace")
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}:\n{text[-3000:]}")
                if " started" in text:
                    waiting.discard(name)
            if time.monotonic() > deadline:
                raise TimeoutError(f"not started after {timeout}s: {sorted(waiting)}")
            time.sleep(0.1)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.processes[name].send_signal(sig)
        self.processes[name].wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> dict[str, int | None]:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait()
        return codes

    def alive(self) -> list[str]:
        return [name for name, process in self.processes.items() if process.poll() is None]
