"""The email channel against a real local SMTP server, through the real outbox dispatcher."""

from __future__ import annotations

import socket
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels import build_channels
from bot.channels.email import EmailChannel
from bot.channels.smtp import SmtpConfig, is_hard_bounce
from bot.channels.stored import StoredChannel
from bot.http.signing import verify
from scheduler.delivery.outbox import Dispatcher, Receipt, enqueue
from scheduler.store.models import Lead, OutboxItem, Suppression
from scheduler.store.suppressions import SuppressionReason, suppress
from tests.bot.email_support import (
    NOW,
    SECRET,
    Clock,
    make_channel,
    make_lead,
    messages_of,
    send_via_outbox,
)
from tests.bot.support import make_settings
from tests.support.fakes.smtp import FakeSmtp

Sessions = async_sessionmaker[AsyncSession]
PAYLOAD = {"subject": "Quick question", "text": "Hi Jane,\nshall we talk?", "unsubscribe": True}


async def test_headers_threading_ids_and_unsubscribe(sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    payload = {
        **PAYLOAD,
        "html": "<p>Hi Jane,<br>shall we talk?</p>",
        "to_name": "Jane Doe",
        "lead_token": lead.token,
        "thread": {"in_reply_to": "<prev@acme.com>", "references": "<first@x> <prev@acme.com>"},
    }
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url)
        state, row = await send_via_outbox(
            sessions, channel, "Jane@Acme.com", payload, key="t1", lead_id=lead.id
        )
        [got] = await smtp.wait_messages(1)

    assert state == "sent"
    message = got.message
    assert got.mail_from == "sales@bot.example.com" and got.rcpt_tos == ["jane@acme.com"]
    assert message["From"] == "Acme Sales <sales@bot.example.com>"
    assert message["To"] == "Jane Doe <jane@acme.com>"
    assert message["Subject"] == "Quick question"
    assert parsedate_to_datetime(message["Date"]) == NOW
    # Our own Message-ID, stored on the outbox row and the lead's message for threading.
    message_id = message["Message-ID"].strip()
    assert message_id.startswith("<") and message_id.endswith("@bot.example.com>")
    assert row.external_id == message_id
    [stored] = await messages_of(sessions, lead.id)
    assert (stored.direction, stored.external_id) == ("out", message_id)
    assert message["Reply-To"] == f"reply+{lead.token}@bot.example.com"
    assert message["In-Reply-To"] == "<prev@acme.com>"
    assert message["References"] == "<first@x> <prev@acme.com>"
    # RFC 8058: one HTTPS URI (+ mailto) and the one-click POST header.
    https_part, mailto_part = [p.strip() for p in message["List-Unsubscribe"].split(",")]
    assert https_part.startswith("<https://bot.example.com/unsubscribe/")
    token = https_part[len("<https://bot.example.com/unsubscribe/") : -1]
    assert verify("unsubscribe", token, secret=SECRET) == {
        "lead": lead.id,
        "email": "jane@acme.com",
    }
    assert mailto_part == f"<mailto:reply+{lead.token}@bot.example.com?subject=unsubscribe>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # multipart/alternative: text first, HTML second, both with the visible unsubscribe link.
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert "shall we talk?" in text.get_content() and token in text.get_content()
    assert "<p>Hi Jane" in html.get_content() and token in html.get_content()


async def test_lead_found_by_address_and_rep_mail_has_no_list_headers(sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url)
        # No lead_token: the lead is found by address; unsubscribe defaults to on for leads.
        await send_via_outbox(
            sessions, channel, "jane@acme.com", {"subject": "s", "text": "t"}, key="a"
        )
        # A notification to a rep (not a lead): no Reply-To tag, no unsubscribe, text only.
        await send_via_outbox(
            sessions, channel, "rep@ourco.com", {"subject": "s", "text": "t"}, key="b"
        )
        to_lead, to_rep = await smtp.wait_messages(2)
    assert to_lead.message["Reply-To"] == f"reply+{lead.token}@bot.example.com"
    assert to_lead.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert to_rep.message["Reply-To"] is None and to_rep.message["List-Unsubscribe"] is None
    assert to_rep.message.get_content_type() == "text/plain"


async def test_without_public_https_url_only_mailto_and_no_one_click(sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url, public_url="")
        await send_via_outbox(sessions, channel, "jane@acme.com", PAYLOAD, key="a")
        [got] = await smtp.wait_messages(1)
    assert got.message["List-Unsubscribe"].strip() == (
        f"<mailto:reply+{lead.token}@bot.example.com?subject=unsubscribe>"
    )
    assert got.message["List-Unsubscribe-Post"] is None


async def test_suppressed_address_is_refused_before_connecting(sessions: Sessions) -> None:
    async with sessions.begin() as session:
        await suppress(
            session, "JANE@acme.com", reason=SuppressionReason.UNSUBSCRIBE, detail=None, now=NOW
        )
    async with FakeSmtp() as smtp:
        state, row = await send_via_outbox(
            sessions, make_channel(sessions, smtp.url), "jane@acme.com", PAYLOAD, key="a"
        )
    assert state == "failed" and "suppressed" in (row.error or "")
    assert smtp.rcpt_attempts == [] and smtp.received == []


async def test_daily_cap_defers_to_next_utc_day(sessions: Sessions) -> None:
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url, daily_cap=2)
        for n in range(2):
            state, _ = await send_via_outbox(
                sessions, channel, f"p{n}@d{n}.com", PAYLOAD, key=f"k{n}"
            )
            assert state == "sent"
        state, row = await send_via_outbox(sessions, channel, "p3@d3.com", PAYLOAD, key="k3")
    assert state == "pending" and "daily cap" in (row.error or "")
    assert row.next_attempt_at == NOW.replace(hour=0) + timedelta(days=1)
    assert len(smtp.received) == 2 and "p3@d3.com" not in smtp.rcpt_attempts


async def test_domain_throttle_defers_that_domain_only(sessions: Sessions) -> None:
    clock = Clock()
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url, clock=clock, domain_per_minute=2)
        for name in ("a", "b"):
            assert (
                await send_via_outbox(sessions, channel, f"{name}@acme.com", PAYLOAD, key=name)
            )[0] == "sent"
        state, row = await send_via_outbox(sessions, channel, "c@ACME.com", PAYLOAD, key="c")
        assert state == "pending" and "acme.com" in (row.error or "")
        assert row.next_attempt_at is not None and row.next_attempt_at >= NOW + timedelta(
            seconds=60
        )
        other, _ = await send_via_outbox(sessions, channel, "x@other.com", PAYLOAD, key="x")
        assert other == "sent"
        # A minute later there is room again: the outbox's retry goes out.
        clock.now = row.next_attempt_at
        assert await Dispatcher(sessions, {"email": channel}).deliver(row.id, clock.now) == "sent"
        await smtp.wait_messages(4)


@pytest.mark.parametrize("where", ["rcpt", "greeting"])
async def test_4xx_is_retried_with_backoff(sessions: Sessions, where: str) -> None:
    async with FakeSmtp() as smtp:
        if where == "rcpt":
            smtp.rcpt_replies["jane@acme.com"] = "450 4.2.1 Mailbox busy, try later"
        else:
            smtp.greeting_reply = "421 4.7.0 Too many connections"
        channel = make_channel(sessions, smtp.url)
        state, row = await send_via_outbox(sessions, channel, "jane@acme.com", PAYLOAD, key="a")
        assert state == "pending" and row.attempts == 1
        assert row.next_attempt_at is not None and row.next_attempt_at > NOW
        smtp.rcpt_replies.clear()
        smtp.greeting_reply = None
        assert (
            await Dispatcher(sessions, {"email": channel}).deliver(row.id, row.next_attempt_at)
            == "sent"
        )
        await smtp.wait_messages(1)


async def test_connection_refused_is_transient(sessions: Sessions) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state, row = await send_via_outbox(
        sessions,
        make_channel(sessions, f"smtp://127.0.0.1:{port}"),
        "jane@acme.com",
        PAYLOAD,
        key="a",
    )
    assert state == "pending" and "connect" in (row.error or "")


async def test_550_suppresses_notes_the_lead_and_refuses_later_sends(sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    async with FakeSmtp() as smtp:
        smtp.rcpt_replies["jane@acme.com"] = "550 5.1.1 <jane@acme.com>: User unknown"
        channel = make_channel(sessions, smtp.url)
        state, row = await send_via_outbox(sessions, channel, "jane@acme.com", PAYLOAD, key="a")
        assert state == "failed" and "550" in (row.error or "")
        smtp.rcpt_replies.clear()
        later, later_row = await send_via_outbox(
            sessions, channel, "jane@acme.com", PAYLOAD, key="b"
        )
    assert later == "failed" and "suppressed (hard_bounce)" in (later_row.error or "")
    assert smtp.rcpt_attempts == ["jane@acme.com"] and smtp.received == []
    async with sessions() as session:
        entry = await session.scalar(
            select(Suppression).where(Suppression.address == "jane@acme.com")
        )
        noted = await session.get_one(Lead, lead.id)
    assert entry is not None and entry.reason == "hard_bounce" and "5.1.1" in (entry.detail or "")
    assert noted.email_status is not None and noted.email_status.startswith("bounced: 550 5.1.1")
    assert noted.opted_out_at is None  # a bounce is not an opt-out: WhatsApp may still work


@pytest.mark.parametrize(
    ("reply", "where"),
    [("550 5.7.1 Relaying denied", "rcpt"), ("554 5.7.1 Message rejected as spam", "data")],
)
async def test_other_5xx_fail_without_suppressing(
    sessions: Sessions, reply: str, where: str
) -> None:
    async with FakeSmtp() as smtp:
        if where == "rcpt":
            smtp.rcpt_replies["jane@acme.com"] = reply
        else:
            smtp.data_reply = reply
        state, row = await send_via_outbox(
            sessions, make_channel(sessions, smtp.url), "jane@acme.com", PAYLOAD, key="a"
        )
    assert state == "failed" and reply.split(maxsplit=1)[0] in (row.error or "")
    async with sessions() as session:
        assert await session.scalar(select(Suppression)) is None


async def test_wrong_password_fails_permanently(sessions: Sessions) -> None:
    async with FakeSmtp() as smtp:
        url = smtp.url.replace(":secret@", ":wrong@")
        state, row = await send_via_outbox(
            sessions, make_channel(sessions, url), "jane@acme.com", PAYLOAD, key="a"
        )
    assert state == "failed" and "535" in (row.error or "")


async def test_timeout_after_data_is_uncertain_never_resent(sessions: Sessions) -> None:
    async with FakeSmtp() as smtp:
        smtp.hang_data = True
        channel = make_channel(sessions, smtp.url, timeout=0.5)
        state, row = await send_via_outbox(sessions, channel, "jane@acme.com", PAYLOAD, key="a")
        assert smtp.data_started.is_set()
    assert state == "uncertain" and "DATA" in (row.error or "")


async def test_bad_payload_fails_permanently(sessions: Sessions) -> None:
    async with FakeSmtp() as smtp:
        state, row = await send_via_outbox(
            sessions,
            make_channel(sessions, smtp.url),
            "jane@acme.com",
            {"text": "no subject"},
            key="a",
        )
    assert state == "failed" and "subject" in (row.error or "") and smtp.rcpt_attempts == []


def test_smtp_url_parsing_and_bounce_classification() -> None:
    plain = SmtpConfig.from_url("smtp://me%40x.com:p%3Ass@mail.example.com")
    assert (plain.hostname, plain.port, plain.username, plain.password, plain.use_tls) == (
        "mail.example.com",
        587,
        "me@x.com",
        "p:ss",
        False,
    )
    tls = SmtpConfig.from_url("smtps://mail.example.com")
    assert (tls.port, tls.use_tls, tls.username) == (465, True, None)
    with pytest.raises(ValueError, match="smtp://"):
        SmtpConfig.from_url("http://mail.example.com")
    assert is_hard_bounce(550, "5.1.1 User unknown")
    assert is_hard_bounce(550, "Mailbox does not exist")
    assert is_hard_bounce(554, "5.2.1 mailbox disabled")
    assert not is_hard_bounce(550, "5.7.1 Relaying denied")
    assert not is_hard_bounce(552, "5.2.2 Mailbox full")
    assert not is_hard_bounce(450, "4.1.1 try later")


def test_build_channels_uses_smtp_only_when_configured(sessions: Sessions) -> None:
    assert isinstance(build_channels(make_settings(), sessions)["email"], StoredChannel)
    configured = make_settings(smtp_url="smtps://u:p@mail.example.com", email_from="S <s@x.com>")
    channel = build_channels(configured, sessions)["email"]
    assert isinstance(channel, EmailChannel) and channel.smtp.use_tls
    with pytest.raises(ValueError, match="LEADBOT_EMAIL_FROM"):
        build_channels(make_settings(smtp_url="smtp://mail.example.com"), sessions)


# -- batches and pooled connections ------------------------------------------------------


async def enqueue_many(
    sessions: Sessions, recipients: list[str], payload: dict[str, object]
) -> list[int]:
    ids = []
    async with sessions.begin() as session:
        for n, recipient in enumerate(recipients):
            item_id = await enqueue(
                session,
                key=f"b{n}",
                channel="email",
                recipient=recipient,
                payload=payload,
                now=NOW,
            )
            assert item_id is not None
            ids.append(item_id)
    return ids


async def test_a_batch_reuses_connections_and_checks_with_a_few_queries(
    sessions: Sessions,
) -> None:
    await make_lead(sessions)
    engine = sessions.kw["bind"]
    statements: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url, domain_per_minute=100)
        recipients = [f"p{n}@d{n % 3}.com" for n in range(20)] + ["jane@acme.com"]
        ids = await enqueue_many(sessions, recipients, PAYLOAD)
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            [outcomes] = [
                await channel.send_batch([(r, PAYLOAD) for r in recipients], concurrency=8)
            ]
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        received = await smtp.wait_messages(21)
        states = await Dispatcher(sessions, {"email": channel}).deliver_many(ids, NOW)
        await smtp.wait_messages(42)
    assert all(isinstance(o, Receipt) for o in outcomes)
    # Suppressions, leads by address, today's count, recent per domain: not one per email.
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) <= 5
    assert channel.pool.connects <= 2 * 4  # the pool's size, per batch
    assert channel.pool._idle == []  # keepalive=0: closed once the batch was done
    assert {r.rcpt_tos[0] for r in received} == set(recipients)
    jane = next(r for r in received if r.rcpt_tos == ["jane@acme.com"])
    assert jane.message["Reply-To"] is not None  # the lead was found by address
    assert set(states.values()) == {"sent"}


async def test_caps_hold_within_one_batch(sessions: Sessions) -> None:
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url, daily_cap=3, domain_per_minute=2)
        recipients = ["a@acme.com", "b@acme.com", "c@acme.com", "x@other.com", "y@third.com"]
        ids = await enqueue_many(sessions, recipients, PAYLOAD)
        states = await Dispatcher(sessions, {"email": channel}).deliver_many(ids, NOW)
        await smtp.wait_messages(3)
    # acme.com: two a minute, so c waits; then the day's cap of 3 holds y back.
    assert [states[i] for i in ids] == ["sent", "sent", "pending", "sent", "pending"]
    async with sessions() as session:
        c = await session.get_one(OutboxItem, ids[2])
        y = await session.get_one(OutboxItem, ids[4])
    assert "acme.com" in (c.error or "") and c.attempts == 0
    assert c.next_attempt_at == NOW + timedelta(seconds=60)
    assert "daily cap" in (y.error or "") and y.attempts == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [
        "a@acme.com",
        "b@acme.com",
        "x@other.com",
    ]


async def test_a_dropped_idle_connection_is_replaced_without_losing_the_email(
    sessions: Sessions,
) -> None:
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url)
        channel.pool.keepalive = 60.0
        try:
            first, _ = await send_via_outbox(sessions, channel, "a@acme.com", PAYLOAD, key="a")
            [idle] = channel.pool._idle
            assert idle.transport is not None
            idle.transport.close()  # the server hung up while the connection sat idle
            second, row = await send_via_outbox(sessions, channel, "b@acme.com", PAYLOAD, key="b")
            third, _ = await send_via_outbox(sessions, channel, "c@acme.com", PAYLOAD, key="c")
            await smtp.wait_messages(3)
        finally:
            await channel.aclose()
    assert (first, second, third) == ("sent", "sent", "sent") and row.attempts == 1
    assert channel.pool.connects == 2  # one reconnect, then reused again
    assert channel.pool._idle == []


async def test_non_ascii_is_encoded_and_line_breaks_in_headers_are_refused(
    sessions: Sessions,
) -> None:
    payload = {
        "subject": "Café – a question",
        "text": "Héllo Zoë",
        "html": "<p>Héllo</p>",
        "to_name": "Zoë Dœ",
    }
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url)
        state, _ = await send_via_outbox(sessions, channel, "zoe@acme.com", payload, key="a")
        [got] = await smtp.wait_messages(1)
        injected = {"subject": "Hi\r\nBcc: victim@x.com", "text": "t"}
        refused, row = await send_via_outbox(sessions, channel, "z@acme.com", injected, key="b")
    assert state == "sent"
    assert got.raw.isascii()  # 7-bit clean: encoded words and quoted-printable
    assert got.message["Subject"] == "Café – a question"
    assert got.message["To"] == "Zoë Dœ <zoe@acme.com>"
    text, html = got.message.iter_parts()
    assert text.get_content().startswith("Héllo Zoë") and "<p>Héllo</p>" in html.get_content()
    assert refused == "failed" and "line breaks" in (row.error or "")
    assert len(smtp.received) == 1
