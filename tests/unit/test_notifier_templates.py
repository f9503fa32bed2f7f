from __future__ import annotations

import dataclasses
import datetime
import html
import unicodedata
from zoneinfo import ZoneInfo

import pytest

from services.notifier.templates import (
    CodeEmailContent,
    RenderedEmail,
    render_code_email,
    supported_languages,
)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
BERLIN = ZoneInfo("Europe/Berlin")
UTC = datetime.UTC
CODE = "482913"
HTML_LANG = {"en": "en", "de": "de", "pt": "pt-BR"}


def make_content(**overrides: object) -> CodeEmailContent:
    base = CodeEmailContent(
        recipient_name="Anna Müller",
        order_reference="A-1001",
        code=CODE,
        delivery_date=datetime.date(2026, 12, 3),
        valid_until=datetime.datetime(2026, 12, 4, 0, 0, tzinfo=SAO_PAULO),
        zone="America/Sao_Paulo",
        locale="en",
        neighbour_allowed=True,
        is_redelivery=False,
    )
    return dataclasses.replace(base, **overrides)


def render(**overrides: object) -> RenderedEmail:
    return render_code_email(make_content(**overrides))


def all_parts(email: RenderedEmail) -> tuple[str, str, str]:
    return email.subject, email.text, email.html


# ------------------------------------------------------------------ language choice


def test_supported_languages() -> None:
    assert supported_languages() == ("en", "de", "pt")


@pytest.mark.parametrize(
    ("locale", "language"),
    [
        ("de", "de"),
        ("de-DE", "de"),
        ("de-AT", "de"),
        ("de_CH", "de"),
        ("de_DE.UTF-8", "de"),
        ("DE", "de"),
        ("pt-BR", "pt"),
        ("PT_br", "pt"),
        ("pt", "pt"),
        ("en", "en"),
        ("en-GB", "en"),
        ("en_US", "en"),
        ("fr", "en"),
        ("fr-FR", "en"),
        ("", "en"),
        ("   ", "en"),
        ("xx-!!", "en"),
    ],
)
def test_language_picked_from_locale(locale: str, language: str) -> None:
    email = render(locale=locale)
    assert email.language == language
    assert f'<html lang="{HTML_LANG[language]}">' in email.html


# ------------------------------------------------------------------ the code


@pytest.mark.parametrize("locale", ["en", "de", "pt-BR"])
@pytest.mark.parametrize("redelivery", [False, True])
def test_code_in_body_but_not_in_subject(locale: str, redelivery: bool) -> None:
    email = render(locale=locale, is_redelivery=redelivery)
    assert CODE in email.text
    assert CODE in email.html
    assert CODE not in email.subject
    assert "A-1001" in email.subject


def test_code_on_its_own_line_in_text_and_prominent_in_html() -> None:
    email = render()
    assert CODE in [line.strip() for line in email.text.splitlines()]
    assert f">{CODE}</p>" in email.html
    assert "font-size:32px" in email.html


def test_code_inside_reference_is_masked_in_subject() -> None:
    email = render(order_reference=f"ORD-{CODE}-7")
    assert CODE not in email.subject
    assert "ORD-" in email.subject
    assert f"ORD-{CODE}-7" in email.text  # the body may show the reference as is


@pytest.mark.parametrize("length", [4, 8, 12])
def test_code_lengths_accepted(length: int) -> None:
    code = "1234567890123"[:length]
    email = render(code=code)
    assert code in email.text
    assert code not in email.subject


@pytest.mark.parametrize(
    "bad_code",
    [
        "48a913",
        "123",
        "1234567890123",
        "",
        " 482913",
        "482913\n",
        "482 913",
        "-48291",
        "４８２９１３",  # full-width digits
        "٤٨٢٩١٣",  # Arabic-Indic digits
        "482913<script>",
    ],
)
def test_bad_code_raises_without_echoing_it(bad_code: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        render(code=bad_code)
    message = str(excinfo.value)
    assert "digits" in message
    if bad_code.strip():
        assert bad_code not in message
        assert bad_code.strip() not in message


def test_non_string_code_raises_value_error() -> None:
    with pytest.raises(ValueError):
        render(code=482913)


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    ("locale", "day", "expected"),
    [
        ("en", datetime.date(2026, 12, 3), "Thursday, 3 December 2026"),
        ("de", datetime.date(2026, 12, 3), "Donnerstag, 3. Dezember 2026"),
        ("pt-BR", datetime.date(2026, 12, 3), "quinta-feira, 3 de dezembro de 2026"),
        ("en", datetime.date(2026, 3, 7), "Saturday, 7 March 2026"),
        ("de", datetime.date(2026, 3, 7), "Samstag, 7. März 2026"),
        ("pt-BR", datetime.date(2026, 3, 7), "sábado, 7 de março de 2026"),
        ("de", datetime.date(2027, 5, 31), "Montag, 31. Mai 2027"),
        ("pt-BR", datetime.date(2027, 2, 14), "domingo, 14 de fevereiro de 2027"),
    ],
)
def test_delivery_date_wording(locale: str, day: datetime.date, expected: str) -> None:
    valid_until = datetime.datetime.combine(
        day + datetime.timedelta(days=1), datetime.time(0, 0), tzinfo=SAO_PAULO
    )
    email = render(locale=locale, delivery_date=day, valid_until=valid_until)
    assert expected in email.text
    assert html.escape(expected) in email.html


# ------------------------------------------------------------------ validity


@pytest.mark.parametrize(
    "valid_until",
    [
        datetime.datetime(2026, 12, 4, 0, 0, tzinfo=SAO_PAULO),
        datetime.datetime(2026, 12, 4, 3, 0, tzinfo=UTC),  # the same instant, given in UTC
    ],
)
def test_validity_end_of_day_sao_paulo(valid_until: datetime.datetime) -> None:
    email = render(valid_until=valid_until, zone="America/Sao_Paulo")
    sentence = (
        "The code is valid until 23:59 on Thursday, 3 December 2026 (America/Sao_Paulo time)."
    )
    assert sentence in email.text
    assert html.escape(sentence) in email.html


@pytest.mark.parametrize(
    "valid_until",
    [
        datetime.datetime(2026, 10, 26, 0, 0, tzinfo=BERLIN),
        datetime.datetime(2026, 10, 25, 23, 0, tzinfo=UTC),  # CET (UTC+1) after the change
    ],
)
def test_validity_end_of_day_berlin_autumn_dst_change(valid_until: datetime.datetime) -> None:
    email = render(
        locale="de-DE",
        delivery_date=datetime.date(2026, 10, 25),
        valid_until=valid_until,
        zone="Europe/Berlin",
    )
    assert (
        "Der Code ist gültig bis Sonntag, 25. Oktober 2026, 23:59 Uhr (Ortszeit Europe/Berlin)."
    ) in email.text
    assert "22:59" not in email.text
    assert "00:59" not in email.text


def test_validity_end_of_day_berlin_spring_dst_change() -> None:
    email = render(
        locale="en",
        delivery_date=datetime.date(2026, 3, 29),
        valid_until=datetime.datetime(2026, 3, 29, 22, 0, tzinfo=UTC),  # CEST midnight
        zone="Europe/Berlin",
    )
    assert "until 23:59 on Sunday, 29 March 2026 (Europe/Berlin time)" in email.text


def test_validity_wording_portuguese() -> None:
    email = render(locale="pt-BR")
    assert (
        "válido até as 23:59 de quinta-feira, 3 de dezembro de 2026 (horário de America/Sao_Paulo)"
    ) in email.text


def test_validity_shows_last_minute_before_valid_until() -> None:
    email = render(valid_until=datetime.datetime(2026, 12, 3, 18, 30, tzinfo=SAO_PAULO))
    assert "until 18:29 on Thursday, 3 December 2026" in email.text


def test_naive_valid_until_rejected() -> None:
    with pytest.raises(ValueError):
        render(valid_until=datetime.datetime(2026, 12, 4, 0, 0))


def test_unknown_zone_falls_back_to_explicit_offset_and_is_escaped() -> None:
    email = render(
        zone="Mars/<b>Olympus</b>",
        valid_until=datetime.datetime(2026, 12, 4, 3, 0, tzinfo=UTC),
    )
    assert "until 02:59 on Friday, 4 December 2026 (UTC, Mars/<b>Olympus</b>)" in email.text
    assert "<b>" not in email.html
    assert "Mars/&lt;b&gt;Olympus&lt;/b&gt;" in email.html


def test_path_like_zone_is_not_resolved() -> None:
    email = render(zone="../../../etc/passwd")
    assert "UTC-03:00" in email.text  # shown in valid_until's own offset


# ------------------------------------------------------------------ neighbour, redelivery


NEIGHBOUR_ALLOWED = {
    "en": "A neighbour may also receive the parcel for you if you tell them the code",
    "de": "Eine Nachbarin oder ein Nachbar darf das Paket für Sie entgegennehmen",
    "pt-BR": "Um vizinho também pode receber o pacote por você",
}
NEIGHBOUR_NOT_ALLOWED = {
    "en": "Only you can receive this parcel",
    "de": "Das Paket wird ausschließlich an Sie persönlich übergeben",
    "pt-BR": "Somente você pode receber este pacote",
}


@pytest.mark.parametrize("locale", ["en", "de", "pt-BR"])
def test_neighbour_sentence(locale: str) -> None:
    allowed = render(locale=locale, neighbour_allowed=True)
    refused = render(locale=locale, neighbour_allowed=False)
    for email in (allowed, refused):
        assert email.text.count("\n\n") >= 6
    assert NEIGHBOUR_ALLOWED[locale] in allowed.text
    assert html.escape(NEIGHBOUR_ALLOWED[locale]) in allowed.html
    assert NEIGHBOUR_NOT_ALLOWED[locale] not in allowed.text
    assert NEIGHBOUR_NOT_ALLOWED[locale] in refused.text
    assert html.escape(NEIGHBOUR_NOT_ALLOWED[locale]) in refused.html
    assert NEIGHBOUR_ALLOWED[locale] not in refused.text
    assert NEIGHBOUR_ALLOWED[locale] not in refused.html


@pytest.mark.parametrize(
    ("locale", "first_time", "redelivery", "subject_word"),
    [
        (
            "en",
            "is on its way",
            "will be delivered again on Thursday, 3 December 2026, with a new code. "
            "The previous code no longer works.",
            "New",
        ),
        (
            "de",
            "ist unterwegs",
            "wird erneut zugestellt – mit einem neuen Code. Die Zustellung erfolgt am "
            "Donnerstag, 3. Dezember 2026. Der bisherige Code ist nicht mehr gültig.",
            "Neuer",
        ),
        (
            "pt-BR",
            "está a caminho",
            "será entregue novamente, com um novo código. A nova entrega está prevista "
            "para quinta-feira, 3 de dezembro de 2026. O código anterior não funciona mais.",
            "Novo",
        ),
    ],
)
def test_redelivery_wording(
    locale: str, first_time: str, redelivery: str, subject_word: str
) -> None:
    normal = render(locale=locale, is_redelivery=False)
    again = render(locale=locale, is_redelivery=True)
    assert first_time in normal.text
    assert redelivery not in normal.text
    assert redelivery in again.text
    assert html.escape(redelivery) in again.html
    assert first_time not in again.text
    assert again.subject.startswith(subject_word)
    assert not normal.subject.startswith(subject_word)


@pytest.mark.parametrize(
    ("locale", "greeting", "advice"),
    [
        ("en", "Hello Anna Müller,", "Never give it out by phone, email or message."),
        ("de", "Guten Tag Anna Müller,", "niemals am Telefon, per E-Mail oder per Nachricht"),
        ("pt-BR", "Olá, Anna Müller,", "Nunca o compartilhe por telefone, e-mail ou mensagem."),
    ],
)
def test_greeting_and_safety_advice(locale: str, greeting: str, advice: str) -> None:
    email = render(locale=locale)
    assert email.text.startswith(greeting)
    assert advice in email.text
    assert html.escape(advice) in email.html


def test_empty_name_gives_neutral_greeting() -> None:
    assert render(recipient_name=" \r\n ").text.startswith("Hello,\n")


# ------------------------------------------------------------------ escaping, injection


def test_script_in_name_is_escaped_in_html() -> None:
    name = '<script>alert("x")</script>'
    email = render(recipient_name=name)
    assert "<script" not in email.html.lower()
    assert html.escape(name, quote=True) in email.html
    assert name in email.text  # plain text shows it verbatim, harmlessly


def test_reference_is_escaped_in_html() -> None:
    reference = "A&B <img src=x onerror=alert(1)> \"'"
    email = render(order_reference=reference)
    assert "<img" not in email.html
    assert html.escape(reference, quote=True) in email.html


def test_html_has_no_external_resources() -> None:
    email = render()
    lowered = email.html.lower()
    for forbidden in ("http:", "https:", "<a ", "<img", "<link", "<script", "src=", "url("):
        assert forbidden not in lowered


def test_crlf_in_name_and_reference_not_in_subject() -> None:
    email = render(
        recipient_name="Anna\r\nBcc: evil@example.com",
        order_reference="A-1001\r\nBcc: evil@example.com\x00\x1b[31m\u2028x",
    )
    for char in ("\r", "\n", "\x00", "\x1b", "\u2028"):
        assert char not in email.subject
    assert "Bcc:" not in [line[:4] for line in email.text.splitlines()]
    for part in all_parts(email):
        assert "\r" not in part
        assert "\x00" not in part
        assert "\x1b" not in part
    assert "Anna  Bcc: evil@example.com" in email.text
    assert email.subject == "Your delivery code for order A-1001  Bcc: evil@example.com  [31m x"


@pytest.mark.parametrize("locale", ["en", "de", "pt-BR"])
@pytest.mark.parametrize("redelivery", [False, True])
def test_subject_length_cap(locale: str, redelivery: bool) -> None:
    reference = "R" * 300
    email = render(locale=locale, order_reference=reference, is_redelivery=redelivery)
    assert len(email.subject) <= 120
    assert email.subject.endswith("\u2026")
    assert "RRRR" in email.subject
    assert reference in email.text  # the body keeps the full reference


def test_subject_without_truncation_when_short() -> None:
    reference = "X" * (120 - len("Your delivery code for order "))
    email = render(order_reference=reference)
    assert email.subject == f"Your delivery code for order {reference}"
    assert len(email.subject) == 120


def test_long_name_truncated_with_ellipsis() -> None:
    name = "B" * 150
    email = render(recipient_name=name)
    assert "B" * 101 not in email.text
    assert "B" * 99 + "\u2026" in email.text
    assert "B" * 99 + "\u2026" in email.html


def test_name_of_exactly_100_characters_kept() -> None:
    name = "C" * 100
    email = render(recipient_name=name)
    assert f"Hello {name}," in email.text


def test_no_control_characters_in_any_part() -> None:
    nasty = "x\t\x07\x7f\x85\u2029\u202eevil"
    email = render(recipient_name=nasty, order_reference=nasty, zone=nasty)
    for part in all_parts(email):
        for char in part:
            if char == "\n":
                continue
            assert unicodedata.category(char) not in ("Cc", "Zl", "Zp"), repr(char)
            assert char != "\u202e"
