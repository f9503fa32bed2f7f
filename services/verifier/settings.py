"""The verifier's configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field

from shared.settings import RuntimeSettings

__all__ = ["VerifierSettings"]


class VerifierSettings(RuntimeSettings):
    hash_keys_file: Path
    attempt_keys_file: Path
    verifier_max_attempt_lag_seconds: float = Field(default=900.0, gt=0)

    @property
    def max_attempt_lag(self) -> timedelta:
        return timedelta(seconds=self.verifier_max_attempt_lag_seconds)
