"""The notifier's configuration: the SMTP relay, the customer-facing key ring, the tracking view."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from shared.settings import RuntimeSettings

__all__ = ["NotifierSettings"]


class NotifierSettings(RuntimeSettings):
    seal_keys_file: Path
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=2525, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    notifier_sender: str = "Parcel delivery <no-reply@delivery.example>"
    notifier_message_id_domain: str = Field(default="delivery.example", pattern=r"^[A-Za-z0-9.-]+$")
    # The tracking view (services/notifier/web.py) runs only when its key ring is configured.
    tracking_keys_file: Path | None = None
    notifier_defer_base_seconds: float = Field(default=5.0, gt=0)
    notifier_defer_max_seconds: float = Field(default=300.0, gt=0)
    notifier_http_port: int = Field(default=8081, ge=0, le=65535)  # 0: any free port, logged

    @field_validator("tracking_keys_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value
