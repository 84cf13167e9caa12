"""Signature, envelope parsing of every fixture, attribution codes, turn building, payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from bot.booking_link import booking_link
from bot.http.errors import WebhookSignatureError
from bot.whatsapp.attribution import (
    AD_SOURCE,
    UNKNOWN,
    attribute,
    campaign_of,
    click_to_chat_link,
    ref_code,
)
from bot.whatsapp.envelope import EnvelopeError, InboundMessage, parse_envelope
from bot.whatsapp.payloads import to_payload
from bot.whatsapp.signature import sign, verify
from bot.whatsapp.turns import build_events
from dialogs.actions import Button, Row, SendButtons, SendCtaUrl, SendList, SendText
from dialogs.events import ChoiceSelected, Started, TextReceived, UnsupportedMedia

DATA = Path(__file__).resolve().parents[2] / "data" / "whatsapp"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


# -- signature --------------------------------------------------------------------------------

PYWA_SECRET = "1222e786b144d0e85b9f365372d93676"  # revoked; pywa's own test vector
PYWA_SIGNATURE = "sha256=54edfa1d7259e0eb13c677cc7d73d1b5c86cfa12433d19156e058ab9251bc441"


def test_the_real_test_vector_verifies() -> None:
    body = load("signature_vector.body")
    assert sign(PYWA_SECRET, body) == PYWA_SIGNATURE
    verify(PYWA_SECRET, body, PYWA_SIGNATURE)
    verify(PYWA_SECRET, body, PYWA_SIGNATURE.upper().replace("SHA256=", "sha256="))


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("", 401), ("sha256=" + "0" * 64, 403), ("garbage", 403)],
)
def test_missing_or_wrong_signature_is_refused(header: str | None, status: int) -> None:
    with pytest.raises(WebhookSignatureError) as info:
        verify(PYWA_SECRET, load("signature_vector.body"), header)
    assert info.value.status == status


def test_a_reserialized_body_does_not_verify() -> None:
    body = load("signature_vector.body")
    reserialized = json.dumps(json.loads(body)).encode()
    with pytest.raises(WebhookSignatureError):
        verify(PYWA_SECRET, reserialized, PYWA_SIGNATURE)


# -- envelope ---------------------------------------------------------------------------------

EXPECTED = {
    "text.json": ("text", "hello", None, None),
    "button_reply.json": ("choice", None, "need:build", None),
    "list_reply.json": ("choice", None, "company_size:51-200", None),
    "template_button.json": ("choice", None, "resume:lead42", None),
    "image.json": ("media", None, None, "image"),
    "image_caption.json": ("media", "we are about 40 people", None, "image"),
    "audio.json": ("media", None, None, "audio"),
    "sticker.json": ("media", None, None, "sticker"),
    "location.json": ("media", None, None, "location"),
    "reaction.json": ("media", None, None, "reaction"),
    "unsupported.json": ("unsupported", None, None, "unsupported"),
    "unknown_type.json": ("unsupported", None, None, "hologram"),
    "request_welcome.json": ("welcome", None, None, None),
    "edit.json": ("ignored", None, None, None),
    "referral_ad.json": ("text", "Hi, I saw your ad", None, None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_message_fixture_parses(name: str) -> None:
    envelope = parse_envelope(load(name))
    assert len(envelope.messages) == 1 and envelope.statuses == ()
    message = envelope.messages[0]
    kind, text, choice, media = EXPECTED[name]
    assert (message.kind, message.text, message.choice_id, message.media_kind) == (
        kind,
        text,
        choice,
        media,
    )
    assert message.id.startswith("wamid.")
    assert message.sender == "+972987654321"
    assert message.user_id == "IL.831795919964525"
    assert message.name == "Dana"
    assert message.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert InboundMessage.from_json(json.loads(json.dumps(message.to_json()))) == message


def test_referral_of_a_click_to_whatsapp_ad() -> None:
    message = parse_envelope(load("referral_ad.json")).messages[0]
    assert message.referral is not None
    assert message.referral.source_id == "120210000000000"
    assert message.referral.source_type == "ad"
    assert message.referral.headline == "Free consult"
    assert message.referral.source_url == "https://fb.me/3cr4Wqqkv"
    assert message.referral.ctwa_clid is not None and message.referral.ctwa_clid.startswith("ARA")


def test_a_batch_keeps_every_entry_change_and_message() -> None:
    envelope = parse_envelope(load("batched_three_people.json"))
    assert [(m.id, m.sender, m.name) for m in envelope.messages] == [
        ("wamid.BATCH.A1", "+14155550101", "Ann"),
        ("wamid.BATCH.B1", "+14155550102", "Ben"),
        ("wamid.BATCH.C1", "+14155550103", "Cleo"),
    ]


def test_bsuid_only_sender_does_not_crash() -> None:
    message = parse_envelope(load("bsuid_only.json")).messages[0]
    assert message.wa_id is None
    assert message.user_id == "US.13491208655302741918"
    assert message.sender == "bsuid:US.13491208655302741918"
    assert message.name == "Ana"


@pytest.mark.parametrize(
    ("name", "status", "codes"),
    [
        ("status_delivered.json", "delivered", ()),
        ("status_read.json", "read", ()),
        ("status_failed_131047.json", "failed", (131047,)),
        ("status_sent_lean_contact.json", "sent", ()),
    ],
)
def test_statuses_parse(name: str, status: str, codes: tuple[int, ...]) -> None:
    envelope = parse_envelope(load(name))
    assert envelope.messages == ()
    (update,) = envelope.statuses
    assert (update.status, update.error_codes, update.recipient_id) == (
        status,
        codes,
        "972987654321",
    )


def test_other_fields_carry_nothing_for_us() -> None:
    assert parse_envelope(load("account_update.json")).messages == ()


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("malformed_not_json.txt", "not valid JSON"),
        ("malformed_array.json", "JSON object"),
        ("malformed_entry_not_list.json", "entry must be a list"),
        ("malformed_value_missing.json", "value must be an object"),
        ("malformed_message_no_id.json", r"messages\[0\]\.id is missing"),
        ("malformed_message_no_sender.json", "no sender"),
        ("malformed_bad_timestamp.json", "timestamp"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(name: str, words: str) -> None:
    with pytest.raises(EnvelopeError, match=words):
        parse_envelope(load(name))


# -- attribution ------------------------------------------------------------------------------


def test_link_carries_a_checked_ref_code() -> None:
    link = click_to_chat_link("+1 (415) 555-0123", "FB Spring '26")
    parts = urlsplit(link)
    assert parts.netloc == "wa.me" and parts.path == "/14155550123"
    text = unquote(parse_qs(parts.query)["text"][0])
    code = ref_code("FB Spring '26")
    assert text.endswith(f"[ref:{code}]") and code.startswith("fb-spring-26.")
    assert campaign_of(code) == "fb-spring-26"


def _first(text: str) -> InboundMessage:
    return InboundMessage(
        id="wamid.X", type="text", kind="text", timestamp=datetime.now(UTC), wa_id="1", text=text
    )


def test_first_message_attribution() -> None:
    code = ref_code("fb-spring")
    good = attribute(_first(f"Hi! I'd like to know more. [ref:{code}]"))
    assert good.source == "fb-spring" and good.details["campaign"] == "fb-spring"
    edited = attribute(_first(f"Hi [ref:{code.replace('fb', 'fx')}]"))
    assert edited.source == UNKNOWN and "ref_invalid" in edited.details
    assert attribute(_first("hello")).source == UNKNOWN
    ad = attribute(parse_envelope(load("referral_ad.json")).messages[0])
    assert ad.source == AD_SOURCE and ad.details["ad_source_id"] == "120210000000000"
    assert "ctwa_clid" in ad.details


# -- turns ------------------------------------------------------------------------------------


def _msg(kind: str, **fields: object) -> InboundMessage:
    values: dict[str, object] = {
        "id": "wamid.T",
        "type": kind,
        "kind": kind,
        "timestamp": datetime.now(UTC),
        "wa_id": "1",
    }
    values.update(fields)
    return InboundMessage(**values)  # type: ignore[arg-type]


def test_a_burst_of_texts_is_one_event() -> None:
    events = build_events(
        [_msg("text", text="hi"), _msg("text", text="we are 40"), _msg("text", text="asap")]
    )
    assert events == [TextReceived("hi\nwe are 40\nasap")]


def test_turn_rules() -> None:
    code = ref_code("x")
    assert build_events([_msg("text", text=f"[ref:{code}]")]) == [Started()]
    assert build_events([_msg("welcome")]) == [Started()]
    assert build_events([_msg("media", media_kind="image")]) == [UnsupportedMedia("image")]
    assert build_events([_msg("media", media_kind="image"), _msg("text", text="40 people")]) == [
        TextReceived("40 people")
    ]
    assert build_events([_msg("media", media_kind="image", text="caption")]) == [
        TextReceived("caption")
    ]
    assert build_events([_msg("text", text="a"), _msg("choice", choice_id="s:o")]) == [
        TextReceived("a"),
        ChoiceSelected("s:o"),
    ]
    assert build_events([_msg("ignored")]) == []


# -- payloads and the booking link -------------------------------------------------------------


def test_payload_schema() -> None:
    assert to_payload(SendText("hi")) == {"kind": "text", "text": "hi"}
    assert to_payload(SendButtons("b", (Button("s:a", "A"),))) == {
        "kind": "buttons",
        "text": "b",
        "buttons": [{"id": "s:a", "title": "A"}],
    }
    assert to_payload(SendList("b", "Choose", (Row("s:a", "A", "d"), Row("s:b", "B")))) == {
        "kind": "list",
        "text": "b",
        "button": "Choose",
        "rows": [{"id": "s:a", "title": "A", "description": "d"}, {"id": "s:b", "title": "B"}],
    }
    cta = SendCtaUrl("b", "Book", "{calendly_url}")
    assert to_payload(cta, url="https://c/x")["url"] == "https://c/x"
    with pytest.raises(ValueError, match="3 buttons"):
        to_payload(SendButtons("b", tuple(Button(f"s:{i}", str(i)) for i in range(4))))


def test_booking_link_is_prefilled_and_tagged() -> None:
    link = booking_link(
        "https://calendly.com/acme/intro?month=2026-12&utm_content=old",
        token="tok123",
        name="Dana Levi",
        email="dana@example.com",
    )
    query = parse_qs(urlsplit(link).query)
    assert query == {
        "month": ["2026-12"],
        "name": ["Dana Levi"],
        "email": ["dana@example.com"],
        "utm_content": ["tok123"],
    }
    assert "email" not in booking_link("https://c.com/a", token="t", name=None, email=None)
