import json
import uuid
from datetime import UTC, date, datetime

import pytest

from shared.errors import BadEvent
from shared.events import Envelope, Recipient, ShipmentDispatched, decode, encode

DISPATCHED = ShipmentDispatched(
    shipment_id="s-1", order_reference="ORD-1", dispatched_at=datetime(2018, 1, 3, 12, tzinfo=UTC),
    delivery_date=date(2018, 1, 5), delivery_zone="America/Sao_Paulo", goods_value="150.00", currency="BRL",
    carrier="own-fleet", recipient=Recipient(name="Ana", email="ana@customers.example", locale="pt-BR"),
)


def _raw(**changes):
    document = json.loads(encode(Envelope.wrap(DISPATCHED, occurred_at=datetime.now(UTC))))
    document.update(changes)
    return json.dumps(document).encode()


def _payload(**changes):
    document = json.loads(_raw())
    document["payload"].update(changes)
    return json.dumps(document).encode()


def test_round_trip_keeps_the_event_and_keys_it_by_shipment():
    envelope, event = decode(_raw())
    assert event == DISPATCHED and envelope.key == "s-1"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not_utf8"),
        (b"{not json", "not_json"),
        (b'{"a": 1, "a": 2}', "duplicate_key"),
        (b"x" * 70000, "oversized"),
        (b'{"event_id": NaN}', "not_json"),
        (None, "empty"),
    ],
)
def test_undecodable_bytes_are_bad_events(raw, reason):
    with pytest.raises(BadEvent) as caught:
        decode(raw)
    assert caught.value.reason == reason


def test_unknown_types_and_versions_are_refused():
    with pytest.raises(BadEvent) as unknown:
        decode(_raw(event_type="ShipmentTeleported"))
    assert unknown.value.reason == "unknown_event_type"
    with pytest.raises(BadEvent) as version:
        decode(_raw(schema_version=7))
    assert version.value.reason == "unsupported_version"


@pytest.mark.parametrize(
    "change",
    [
        {"goods_value": "-1.00"},
        {"goods_value": "12.345"},
        {"currency": "brl"},
        {"delivery_zone": "Mars/Olympus"},
        {"dispatched_at": "2018-01-03T12:00:00"},
        {"unexpected": True},
        {"shipment_id": "a b"},
        {"recipient": {"name": "Ana", "email": "not-an-address"}},
    ],
)
def test_invalid_payloads_are_refused_without_echoing_their_input(change):
    with pytest.raises(BadEvent) as caught:
        decode(_payload(**change))
    assert caught.value.reason == "invalid_payload"
    for value in change.values():
        if isinstance(value, str) and len(value) > 4:
            assert value not in caught.value.detail


def test_missing_fields_and_mismatched_keys_are_refused():
    document = json.loads(_raw())
    del document["payload"]["recipient"]
    with pytest.raises(BadEvent):
        decode(json.dumps(document).encode())
    with pytest.raises(BadEvent) as mismatch:
        decode(_raw(key="someone-else"))
    assert mismatch.value.reason == "key_mismatch"


def test_envelope_needs_an_aware_time_and_a_uuid():
    with pytest.raises(BadEvent):
        decode(_raw(occurred_at="2018-01-03T12:00:00"))
    with pytest.raises(BadEvent):
        decode(_raw(event_id="123"))
    assert decode(_raw(event_id=str(uuid.uuid4())))


def test_an_integer_too_long_to_convert_is_a_bad_event_not_a_crash():
    with pytest.raises(BadEvent) as caught:
        decode(b'{"event_id": ' + b"9" * 5000 + b"}")
    assert caught.value.reason == "not_json"


def test_an_event_on_a_topic_that_does_not_carry_its_type_is_refused():
    from shared.events import Topics

    topics = Topics("t")
    with pytest.raises(BadEvent) as caught:
        decode(_raw(), topics.event_types(topics.attempts))
    assert caught.value.reason == "wrong_topic"
    assert decode(_raw(), topics.event_types(topics.dispatched))


@pytest.mark.parametrize(
    "change",
    [
        {"recipient": {"name": "Zoë\r\nBcc: x@evil.example", "email": "a@customers.example"}},
        {"recipient": {"name": "Ana\u202e", "email": "a@customers.example"}},
        {"recipient": {"name": "Ana", "email": "josé@bücher.example"}},
        {"dispatched_at": "1900-01-01T00:00:00Z"},
        {"delivery_date": "2150-01-01"},
        {"delivery_date": "2017-12-01"},
    ],
)
def test_text_that_reaches_people_and_implausible_dates_are_refused(change):
    with pytest.raises(BadEvent) as caught:
        decode(_payload(**change))
    assert caught.value.reason == "invalid_payload"


def test_a_non_ascii_display_name_cannot_smuggle_a_recipient():
    import email
    import email.policy

    from services.notifier.mailer import OutgoingEmail, SmtpMailer
    from services.notifier.templates import RenderedEmail

    mailer = SmtpMailer(host="127.0.0.1", port=1, sender="Parcels <no-reply@delivery.example>", timeout=1)
    outgoing = OutgoingEmail(to_name="Zoë <attacker@evil.example>", to_address="victim@customers.example",
                             message_id="<m@x>", rendered=RenderedEmail("s", "t", "<p>h</p>", "en"), headers={})
    parsed = email.message_from_bytes(mailer._message(outgoing).as_bytes(), policy=email.policy.default)
    assert [address.addr_spec for address in parsed["To"].addresses] == ["victim@customers.example"]
