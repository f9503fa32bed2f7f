"""The verifier's configuration."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field

from services.verifier.domain import FlagPolicy
from shared.settings import RuntimeSettings

__all__ = ["VerifierSettings"]


class VerifierSettings(RuntimeSettings):
    hash_keys_file: Path
    attempt_keys_file: Path
    verifier_max_attempt_lag_seconds: float = Field(default=900.0, gt=0)
    verifier_require_assignment: bool = True
    verifier_flag_window_seconds: float = Field(default=8 * 3600, gt=0)
    verifier_flag_min_failed_shipments: int = Field(default=4, ge=1)
    verifier_flag_min_wrong_tries: int = Field(default=6, ge=1)
    verifier_flag_policy: Literal["alert", "refuse"] = "alert"
    verifier_park_seconds: float = Field(default=30.0, gt=0)

    def flag_policy(self) -> FlagPolicy:
        return FlagPolicy(
            window=timedelta(seconds=self.verifier_flag_window_seconds),
            min_failed_shipments=self.verifier_flag_min_failed_shipments,
            min_wrong_tries=self.verifier_flag_min_wrong_tries,
            action=self.verifier_flag_policy,
        )

    @property
    def max_attempt_lag(self) -> timedelta:
        return timedelta(seconds=self.verifier_max_attempt_lag_seconds)
