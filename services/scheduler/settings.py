"""The scheduler's configuration."""

from __future__ import annotations

from pydantic import Field

from shared.settings import RuntimeSettings

__all__ = ["SchedulerSettings"]


class SchedulerSettings(RuntimeSettings):
    scheduler_tick_seconds: float = Field(default=0.05, gt=0, le=60)
