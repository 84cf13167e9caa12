"""Pure parts of email in: quote stripping, auto-reply and bounce detection, parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.email.classify import bounce_of, is_auto_reply
from bot.email.inbound import is_opt_out
from bot.email.inbound_message import (
    InboundEmail,
    InboundError,
    from_json,
    from_mailgun,
    message_ids,
)
from bot.email.quotes import strip_quotes

DATA = Path(__file__).resolve().parent.parent / "data" / "email"
EXPECTED = json.loads((DATA / "expected_stripped.json").read_text("utf-8"))


def load(name: str) -> InboundEmail:
    return from_mailgun(json.loads((DATA / name).read_text("utf-8")))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_client_replies_are_stripped(name: str) -> None:
    assert strip_quotes(load(name).text) == EXPECTED[name]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("Yes please.\n\nOn 2 Mar 2026, at 15:00, Sam <s@x.com> wrote:\n> hi", "Yes please."),
        ("Ja.\n\nAm 02.03.2026 um 15:00 schrieb Sam <s@x.com>:\n> hi", "Ja."),
        ("Oui.\n\nLe lun. 2 mars 2026 à 15:00, Sam <s@x.com> a écrit :\n> hi", "Oui."),
        ("Sure\n-----Original Message-----\nFrom: Sam\nSent: today\nTo: x", "Sure"),
        ("Call me.\n\n-- \nJane Doe\nCFO", "Call me."),
        ("> what size?\n40 people\n> when?\nMarch", "40 people\nMarch"),
        (
            "From: the team's point of view, yes.\nThanks",
            "From: the team's point of view, yes.\nThanks",
        ),
        ("no quotes at all", "no quotes at all"),
    ],
)
def test_quote_patterns(body: str, expected: str) -> None:
    assert strip_quotes(body) == expected


def test_auto_replies() -> None:
    assert is_auto_reply(load("auto_reply_ooo.json"))
    assert not is_auto_reply(load("gmail_reply.json"))
    base = {"from": "a@b.com", "to": "c@d.com", "subject": "Re: hi", "text": "x"}
    for headers in (
        {"X-Autoreply": "yes"},
        {"Precedence": "bulk"},
        {"Precedence": "auto_reply"},
        {"Auto-Submitted": "auto-generated"},
    ):
        assert is_auto_reply(from_json({**base, "headers": headers})), headers
    assert not is_auto_reply(from_json({**base, "headers": {"Auto-Submitted": "no"}}))
    assert is_auto_reply(from_json({**base, "subject": "Out of Office: hi"}))


def test_bounces() -> None:
    bounce = bounce_of(load("bounce_dsn.json"))
    assert bounce is not None and bounce.permanent and bounce.addresses == ("jane@acme.com",)
    assert bounce_of(load("gmail_reply.json")) is None
    delayed = from_json(
        {
            "from": "MAILER-DAEMON@mx.x.com",
            "to": "s@x.com",
            "subject": "Delayed",
            "text": "Final-Recipient: rfc822; a@b.com\nStatus: 4.4.7\n",
        }
    )
    result = bounce_of(delayed)
    assert result is not None and not result.permanent
    flattened = from_json(
        {
            "from": "postmaster@outlook.com",
            "to": "s@x.com",
            "subject": "Undeliverable",
            "text": "Delivery has failed to: jane@acme.com\n"
            "Remote server returned 550 5.1.10 RESOLVER.ADR.RecipientNotFound",
        }
    )
    result = bounce_of(flattened, frozenset({"jane@acme.com"}))
    assert result is not None and result.permanent and result.addresses == ("jane@acme.com",)


@pytest.mark.parametrize(
    ("text", "subject", "expected"),
    [
        ("Unsubscribe", "", True),
        ("please remove me from your list.", "", True),
        ("STOP", "", True),
        ("", "unsubscribe", True),
        ("Stop by our booth next week!", "", False),
        ("How do I unsubscribe my colleague?", "", False),
    ],
)
def test_opt_out_replies(text: str, subject: str, expected: bool) -> None:
    assert is_opt_out(text, subject) is expected


def test_parsing_and_errors() -> None:
    email = load("gmail_reply.json")
    assert email.sender == "jane@acme.com" and email.recipients == (
        "reply+LEAD_TOKEN@bot.example.com",
    )
    assert email.header(
        "content-type",
    ).startswith("multipart/alternative")  # type: ignore[union-attr]
    assert message_ids("<a@x> <b@y>\r\n <c@z>") == ("<a@x>", "<b@y>", "<c@z>")
    assert message_ids("bare@id") == ("<bare@id>",)
    with pytest.raises(InboundError, match="'from'"):
        from_json({"to": "x@y.com"})
    with pytest.raises(InboundError, match="'to'"):
        from_json({"from": "a@b.com", "to": 5})
    with pytest.raises(InboundError, match="headers"):
        from_json({"from": "a@b.com", "to": "c@d.com", "headers": "not json"})
