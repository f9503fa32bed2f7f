"""Rendering of the one-time-code email (subject, plain text and HTML).

Pure and synchronous: no I/O of its own, no clock, no environment, no settings.
The only outside data it consults is the IANA time zone database, through
:mod:`zoneinfo`, to show the end of validity in the delivery address's local time.

Security rules applied to all untrusted text (recipient name, order reference, zone):

* CR, LF and every other control character (plus Unicode line/paragraph separators
  and bidirectional-override characters) is replaced by a space in every part, so
  nothing can inject a mail header through the subject;
* the HTML part escapes it with ``html.escape(..., quote=True)``;
* names are cut to 100 characters and the subject to 120 characters, with an ellipsis;
* the code never appears in the subject (subjects show on lock screens and in logs).
"""

from __future__ import annotations

import datetime
import html
import re
import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_SUBJECT_LENGTH",
    "CodeEmailContent",
    "RenderedEmail",
    "render_code_email",
    "supported_languages",
]

MAX_NAME_LENGTH = 100
MAX_SUBJECT_LENGTH = 120
_MAX_ZONE_DISPLAY_LENGTH = 64
_ELLIPSIS = "\u2026"
_CODE_MASK_CHAR = "\u2022"

_CODE_RE = re.compile(r"[0-9]{4,12}")
# Only plain IANA-looking keys are handed to ZoneInfo (no "..", no absolute paths).
_ZONE_KEY_RE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*")
_BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


@dataclass(frozen=True)
class CodeEmailContent:
    recipient_name: str  # customer's name, untrusted text
    order_reference: str  # retailer's order/shipment reference, untrusted text
    code: str  # the one-time code: 4 to 12 ASCII digits
    delivery_date: datetime.date  # the local delivery day
    valid_until: datetime.datetime  # aware: end of validity (exclusive)
    zone: str  # IANA zone name of the delivery address, untrusted text
    locale: str  # e.g. "de", "de-DE", "en-GB", "pt-BR"; unknown -> English
    neighbour_allowed: bool  # whether a neighbour told the code may receive the parcel
    is_redelivery: bool  # True for the new code of a redelivery day


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    language: str  # "en" | "de" | "pt", the language actually used


# --------------------------------------------------------------------------- dates

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "pt": (
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ),
}

_MONTHS = {
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
    "de": (
        "Januar", "Februar", "März", "April", "Mai", "Juni",
        "Juli", "August", "September", "Oktober", "November", "Dezember",
    ),
    "pt": (
        "janeiro", "fevereiro", "março", "abril", "maio", "junho",
        "julho", "agosto", "setembro", "outubro", "novembro", "dezembro",
    ),
}  # fmt: skip

_DATE_FORMATS = {
    "en": "{weekday}, {day} {month} {year}",  # Thursday, 3 December 2026
    "de": "{weekday}, {day}. {month} {year}",  # Donnerstag, 3. Dezember 2026
    "pt": "{weekday}, {day} de {month} de {year}",  # quinta-feira, 3 de dezembro de 2026
}


def _format_date(day: datetime.date, language: str) -> str:
    return _DATE_FORMATS[language].format(
        weekday=_WEEKDAYS[language][day.weekday()],
        day=day.day,
        month=_MONTHS[language][day.month - 1],
        year=day.year,
    )


# --------------------------------------------------------------------------- wording

_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Your delivery code for order {reference}",
        "subject_redelivery": "New delivery code for order {reference}",
        "greeting": "Hello {name},",
        "greeting_anonymous": "Hello,",
        "intro": (
            "Your parcel for order {reference} is on its way. It will be delivered on {date}."
        ),
        "intro_redelivery": (
            "Your parcel for order {reference} will be delivered again on {date}, "
            "with a new code. The previous code no longer works."
        ),
        "code_label": "Your delivery code:",
        "validity": "The code is valid until {time} on {valid_date} ({zone_label}).",
        "zone_label": "{zone} time",
        "safety": (
            "Only tell this code to the courier in person, at your door. Never give it "
            "out by phone, email or message. The courier will never ask you for the "
            "code in advance."
        ),
        "neighbour_allowed": (
            "A neighbour may also receive the parcel for you if you tell them the code "
            "before the delivery."
        ),
        "neighbour_not_allowed": (
            "Only you can receive this parcel; it will not be handed over to a neighbour."
        ),
        "closing": "Kind regards",
        "signature": "Your delivery team",
    },
    "de": {
        "subject": "Ihr Zustellcode für die Bestellung {reference}",
        "subject_redelivery": "Neuer Zustellcode für die Bestellung {reference}",
        "greeting": "Guten Tag {name},",
        "greeting_anonymous": "Guten Tag,",
        "intro": (
            "Ihr Paket zur Bestellung {reference} ist unterwegs. Die Zustellung erfolgt am {date}."
        ),
        "intro_redelivery": (
            "Ihr Paket zur Bestellung {reference} wird erneut zugestellt – mit einem neuen "
            "Code. Die Zustellung erfolgt am {date}. Der bisherige Code ist nicht mehr gültig."
        ),
        "code_label": "Ihr Zustellcode:",
        "validity": "Der Code ist gültig bis {valid_date}, {time} Uhr ({zone_label}).",
        "zone_label": "Ortszeit {zone}",
        "safety": (
            "Nennen Sie den Code ausschließlich persönlich an Ihrer Tür, bei der Übergabe "
            "des Pakets – niemals am Telefon, per E-Mail oder per Nachricht. Unsere "
            "Zustellerinnen und Zusteller fragen Sie niemals vorab nach dem Code."
        ),
        "neighbour_allowed": (
            "Eine Nachbarin oder ein Nachbar darf das Paket für Sie entgegennehmen, wenn "
            "Sie ihr oder ihm den Code vor der Zustellung mitteilen."
        ),
        "neighbour_not_allowed": (
            "Das Paket wird ausschließlich an Sie persönlich übergeben; eine Abgabe bei "
            "Nachbarn ist nicht möglich."
        ),
        "closing": "Mit freundlichen Grüßen",
        "signature": "Ihr Zustellteam",
    },
    "pt": {
        "subject": "Seu código de entrega do pedido {reference}",
        "subject_redelivery": "Novo código de entrega do pedido {reference}",
        "greeting": "Olá, {name},",
        "greeting_anonymous": "Olá,",
        "intro": (
            "Seu pacote do pedido {reference} está a caminho. A entrega está prevista para {date}."
        ),
        "intro_redelivery": (
            "Seu pacote do pedido {reference} será entregue novamente, com um novo "
            "código. A nova entrega está prevista para {date}. O código anterior não "
            "funciona mais."
        ),
        "code_label": "Seu código de entrega:",
        "validity": "O código é válido até as {time} de {valid_date} ({zone_label}).",
        "zone_label": "horário de {zone}",
        "safety": (
            "Informe este código somente pessoalmente ao entregador, na sua porta. Nunca "
            "o compartilhe por telefone, e-mail ou mensagem. O entregador nunca pedirá o "
            "código com antecedência."
        ),
        "neighbour_allowed": (
            "Um vizinho também pode receber o pacote por você, desde que você informe o "
            "código a ele antes da entrega."
        ),
        "neighbour_not_allowed": (
            "Somente você pode receber este pacote; ele não será entregue a vizinhos."
        ),
        "closing": "Atenciosamente,",
        "signature": "Equipe de entregas",
    },
}

_HTML_LANG = {"en": "en", "de": "de", "pt": "pt-BR"}
_DEFAULT_LANGUAGE = "en"


def supported_languages() -> tuple[str, ...]:
    """The languages the email can be rendered in; the first one is the fallback."""
    return tuple(_STRINGS)


def _language_for(locale: str) -> str:
    """Primary language subtag of a locale ("de-AT", "PT_br", "de_DE.UTF-8"); else English."""
    if not isinstance(locale, str):
        return _DEFAULT_LANGUAGE
    primary = re.split(r"[-_.@]", locale.strip().lower(), maxsplit=1)[0]
    return primary if primary in _STRINGS else _DEFAULT_LANGUAGE


# --------------------------------------------------------------------------- sanitizing


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def _clean(value: str) -> str:
    """Replace every control character by a space and trim the ends."""
    if not isinstance(value, str):
        value = str(value)
    return "".join(" " if _is_control(char) else char for char in value).strip()


def _truncate(value: str, limit: int) -> str:
    """At most ``limit`` characters; a cut string ends with an ellipsis."""
    if len(value) <= limit:
        return value
    if limit <= 0:
        return ""
    return value[: limit - 1].rstrip() + _ELLIPSIS


def _mask_code(value: str, code: str) -> str:
    while code in value:
        value = value.replace(code, _CODE_MASK_CHAR * len(code))
    return value


# --------------------------------------------------------------------------- validity


def _format_offset(offset: datetime.timedelta | None) -> str:
    if not offset:
        return "UTC"
    total_minutes = int(offset.total_seconds()) // 60
    sign = "+" if total_minutes >= 0 else "-"
    hours, minutes = divmod(abs(total_minutes), 60)
    return f"UTC{sign}{hours:02d}:{minutes:02d}"


def _resolve_zone(zone: str) -> ZoneInfo | None:
    if len(zone) > _MAX_ZONE_DISPLAY_LENGTH or not _ZONE_KEY_RE.fullmatch(zone):
        return None
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _last_valid_minute(
    valid_until: datetime.datetime, zone: str, language: str
) -> tuple[datetime.datetime, str]:
    """The last second before ``valid_until`` in local time, and the label of that time.

    The subtraction is done in UTC, so that it is exact across DST changes.
    """
    if not isinstance(valid_until, datetime.datetime):
        raise TypeError("valid_until must be a datetime.datetime")
    if valid_until.tzinfo is None or valid_until.utcoffset() is None:
        raise ValueError("valid_until must be a timezone-aware datetime")
    last_utc = valid_until.astimezone(datetime.UTC) - datetime.timedelta(seconds=1)
    tz = _resolve_zone(zone)
    if tz is not None:
        local = last_utc.astimezone(tz)
        return local, _STRINGS[language]["zone_label"].format(zone=zone)
    # Unknown zone: show the time in valid_until's own offset, stated explicitly.
    local = last_utc.astimezone(valid_until.tzinfo)
    label = _format_offset(local.utcoffset())
    if zone:
        label = f"{label}, {_truncate(zone, _MAX_ZONE_DISPLAY_LENGTH)}"
    return local, label


# --------------------------------------------------------------------------- rendering


def _validate_code(code: object) -> str:
    # Never echo the rejected value: it may be a real code.
    if not isinstance(code, str) or _CODE_RE.fullmatch(code) is None:
        raise ValueError("code must consist of 4 to 12 ASCII digits")
    return code


def _subject(strings: dict[str, str], reference: str, code: str, redelivery: bool) -> str:
    template = strings["subject_redelivery" if redelivery else "subject"]
    reference = _mask_code(reference, code)
    room = MAX_SUBJECT_LENGTH - len(template.format(reference=""))
    subject = template.format(reference=_truncate(reference, room)).strip()
    return _truncate(subject, MAX_SUBJECT_LENGTH)


@dataclass(frozen=True)
class _Body:
    """The wording of one email, already filled in, as plain (unescaped) text."""

    greeting: str
    intro: str
    code_label: str
    code: str
    validity: str
    safety: str
    neighbour: str
    closing: str
    signature: str


def _text_part(body: _Body) -> str:
    blocks = [
        body.greeting,
        body.intro,
        f"{body.code_label}\n\n    {body.code}",
        body.validity,
        body.safety,
        body.neighbour,
        f"{body.closing}\n{body.signature}",
    ]
    return "\n\n".join(blocks) + "\n"


_P_STYLE = "margin:0 0 16px 0;font-size:16px;line-height:1.5;color:#222222;"
_CODE_STYLE = (
    "margin:0 0 16px 0;padding:16px 24px;display:inline-block;"
    "font-family:'Courier New',Courier,monospace;font-size:32px;font-weight:bold;"
    "letter-spacing:6px;color:#111111;background-color:#f2f4f7;"
    "border:1px solid #d0d5dd;border-radius:8px;"
)
_NOTICE_STYLE = (
    "margin:0 0 16px 0;padding:12px 16px;font-size:16px;line-height:1.5;color:#222222;"
    "background-color:#fff8e1;border-left:4px solid #f5a623;"
)


def _html_part(language: str, subject: str, body: _Body) -> str:
    def e(value: str) -> str:
        return html.escape(value, quote=True)

    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_HTML_LANG[language]}">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{e(subject)}</title>\n"
        "</head>\n"
        '<body style="margin:0;padding:0;background-color:#ffffff;">\n'
        '<div style="max-width:600px;margin:0 auto;padding:24px;'
        'font-family:Arial,Helvetica,sans-serif;">\n'
        f'<p style="{_P_STYLE}">{e(body.greeting)}</p>\n'
        f'<p style="{_P_STYLE}">{e(body.intro)}</p>\n'
        f'<p style="{_P_STYLE}">{e(body.code_label)}</p>\n'
        f'<p style="{_CODE_STYLE}">{e(body.code)}</p>\n'
        f'<p style="{_P_STYLE}">{e(body.validity)}</p>\n'
        f'<p style="{_NOTICE_STYLE}"><strong>{e(body.safety)}</strong></p>\n'
        f'<p style="{_P_STYLE}">{e(body.neighbour)}</p>\n'
        f'<p style="{_P_STYLE}">{e(body.closing)}<br>{e(body.signature)}</p>\n'
        "</div>\n"
        "</body>\n"
        "</html>\n"
    )


def render_code_email(content: CodeEmailContent) -> RenderedEmail:
    """Render the code email in the language of ``content.locale`` (English fallback).

    Raises ValueError when the code is not 4 to 12 ASCII digits (without repeating it)
    or when ``valid_until`` is naive.
    """
    code = _validate_code(content.code)
    language = _language_for(content.locale)
    strings = _STRINGS[language]

    name = _truncate(_clean(content.recipient_name), MAX_NAME_LENGTH)
    reference = _clean(content.order_reference)
    zone = _clean(content.zone)

    local_end, zone_label = _last_valid_minute(content.valid_until, zone, language)
    delivery_date = _format_date(content.delivery_date, language)

    greeting = strings["greeting"].format(name=name) if name else strings["greeting_anonymous"]
    intro_key = "intro_redelivery" if content.is_redelivery else "intro"
    intro = strings[intro_key].format(reference=reference, date=delivery_date)
    validity = strings["validity"].format(
        time=local_end.strftime("%H:%M"),
        valid_date=_format_date(local_end.date(), language),
        zone_label=zone_label,
    )
    neighbour_key = "neighbour_allowed" if content.neighbour_allowed else "neighbour_not_allowed"
    body = _Body(
        greeting=greeting,
        intro=intro,
        code_label=strings["code_label"],
        code=code,
        validity=validity,
        safety=strings["safety"],
        neighbour=strings[neighbour_key],
        closing=strings["closing"],
        signature=strings["signature"],
    )

    subject = _subject(strings, reference, code, content.is_redelivery)
    return RenderedEmail(
        subject=subject,
        text=_text_part(body),
        html=_html_part(language, subject, body),
        language=language,
    )
