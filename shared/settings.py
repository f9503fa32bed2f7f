"""Settings every service shares, read once from the environment (prefix `OTP_`).

Each service subclasses `RuntimeSettings` and adds its own fields; a missing or
malformed value fails at start-up with the variable's name. Secrets are `SecretStr`
so that `repr()` and logs never show them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import Clock, FileClock, ScaledClock, SystemClock

__all__ = ["RuntimeSettings"]


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTP_", extra="ignore", frozen=True)

    namespace: str = Field(default="otp", pattern=r"^[a-z][a-z0-9_]{0,30}$")
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    partitions: int = Field(default=6, ge=1, le=128)
    consumer_batch: int = Field(default=200, ge=1, le=5000)
    pg_dsn: SecretStr
    pg_pool_max: int = Field(default=8, ge=1, le=100)
    clock_start: datetime | None = None
    clock_anchor_unix: float | None = None
    clock_speed: float = Field(default=1.0, gt=0)
    clock_file: Path | None = None
    consumer_session_timeout_ms: int = Field(default=10000, ge=6000, le=300000)
    log_level: str = "INFO"

    @field_validator("clock_start")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("OTP_CLOCK_START needs a UTC offset, e.g. 2018-01-01T00:00:00Z")
        return value

    def build_clock(self) -> Clock:
        if self.clock_file is not None:
            return FileClock(self.clock_file)
        if self.clock_start is None:
            return SystemClock()
        anchor = self.clock_anchor_unix
        if anchor is None:
            anchor = datetime.now(UTC).timestamp()
        return ScaledClock(self.clock_start.astimezone(UTC), anchor, self.clock_speed)

    def kafka_client_options(self) -> dict[str, object]:
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_username
            options["sasl_plain_password"] = (
                self.kafka_password.get_secret_value() if self.kafka_password else None
            )
        if self.kafka_security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            # Without a CA file the system's trust store verifies the broker.
            cafile = str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None
            options["ssl_context"] = create_ssl_context(cafile=cafile)
        return options
