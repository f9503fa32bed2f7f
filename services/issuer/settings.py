"""The issuer's configuration. The thresholds are secret policy: they are never logged."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from services.issuer.domain import EligibilityPolicy, IssuePolicy, parse_weekdays
from shared.settings import RuntimeSettings

__all__ = ["IssuerSettings"]


class IssuerSettings(RuntimeSettings):
    issuer_thresholds: SecretStr = SecretStr('{"BRL": "150.00", "EUR": "100.00", "USD": "100.00"}')
    issuer_code_carriers: str = "*"
    issuer_code_digits: int = Field(default=6, ge=4, le=12)
    issuer_max_attempts: int = Field(default=5, ge=1, le=20)
    issuer_max_delivery_days: int = Field(default=4, ge=1, le=30)
    issuer_delivery_weekdays: str = "mon,tue,wed,thu,fri,sat"
    seal_keys_file: Path
    hash_keys_file: Path

    @field_validator("issuer_thresholds")
    @classmethod
    def _thresholds_parse(cls, value: SecretStr) -> SecretStr:
        try:
            parsed = json.loads(value.get_secret_value())
            assert isinstance(parsed, dict) and all(Decimal(v) >= 0 for v in parsed.values())
        except Exception:
            raise ValueError("OTP_ISSUER_THRESHOLDS must be a JSON object of currency to amount") from None
        return value

    def eligibility(self) -> EligibilityPolicy:
        thresholds = {
            currency.upper(): Decimal(amount)
            for currency, amount in json.loads(self.issuer_thresholds.get_secret_value()).items()
        }
        carriers = None
        if self.issuer_code_carriers.strip() != "*":
            carriers = frozenset(c.strip() for c in self.issuer_code_carriers.split(",") if c.strip())
        return EligibilityPolicy(thresholds=thresholds, carriers=carriers)

    def issue_policy(self) -> IssuePolicy:
        return IssuePolicy(
            max_attempts=self.issuer_max_attempts,
            max_delivery_days=self.issuer_max_delivery_days,
            delivery_weekdays=parse_weekdays(self.issuer_delivery_weekdays.split(",")),
        )
