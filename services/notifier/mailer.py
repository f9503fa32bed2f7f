"""The SMTP adapter. A 4xx answer or a lost connection is transient; a 5xx is permanent."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from pydantic import SecretStr

from services.notifier.templates import RenderedEmail
from shared.errors import TransientError

__all__ = ["MailDeferred", "Mailer", "OutgoingEmail", "PermanentMailError", "SmtpMailer", "stable_message_id"]


class PermanentMailError(Exception):
    """The server refused this message for good (5xx): retrying cannot help."""


class MailDeferred(TransientError):
    """The server answered 4xx: it certainly did not take the message; try again later.

    `per_recipient`: the refusal named this recipient (RCPT), so other mail may still go.
    """

    def __init__(self, message: str, per_recipient: bool = False) -> None:
        super().__init__(message)
        self.per_recipient = per_recipient


@dataclass(frozen=True)
class OutgoingEmail:
    to_name: str
    to_address: str
    message_id: str
    rendered: RenderedEmail
    headers: dict[str, str]


class Mailer(Protocol):
    async def send(self, email: OutgoingEmail) -> None: ...


def stable_message_id(code_id: str, domain: str) -> str:
    """The same for every send of one code, so a repeat is recognisable at the receiver."""
    return f"<otp-{hashlib.sha256(code_id.encode()).hexdigest()[:32]}@{domain}>"


@dataclass
class SmtpMailer:
    host: str
    port: int
    sender: str
    timeout: float
    starttls: bool = False
    username: str | None = None
    password: SecretStr | None = None

    def _message(self, email: OutgoingEmail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        # Address quotes or encodes the whole display name; formataddr leaves a non-ASCII
        # name's "<other@address>" readable as a second recipient.
        message["To"] = Address(display_name=email.to_name, addr_spec=email.to_address)
        message["Subject"] = email.rendered.subject
        message["Message-ID"] = email.message_id
        for name, value in email.headers.items():
            message[name] = value
        message.set_content(email.rendered.text)
        message.add_alternative(email.rendered.html, subtype="html")
        # After the content: setting the content resets every Content-* header.
        message["Content-Language"] = email.rendered.language
        return message

    async def send(self, email: OutgoingEmail) -> None:
        try:
            await aiosmtplib.send(
                self._message(email),
                hostname=self.host,
                port=self.port,
                start_tls=self.starttls,
                username=self.username,
                password=self.password.get_secret_value() if self.password else None,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentMailError(f"SMTP {exc.code}") from None
            raise MailDeferred(f"SMTP {exc.code}") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [response.code for response in exc.recipients]
            if all(500 <= code < 600 for code in codes):
                raise PermanentMailError(f"SMTP recipient refused {codes}") from None
            raise MailDeferred(f"SMTP recipient deferred {codes}", per_recipient=True) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientError(f"SMTP unavailable ({type(exc).__name__})") from None
