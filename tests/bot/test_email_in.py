"""Inbound email over HTTP: Mailgun form posts and the JSON form, matched and applied."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.email.webhook import mailgun_signature
from scheduler.pipeline.stages import transition
from scheduler.store.models import Lead, Message, OutboxItem, Rep, Stage, StageEvent, Suppression
from tests.bot.email_support import (
    NOW,
    PAYLOAD_TEXT,
    add_touch,
    make_channel,
    make_lead,
    send_via_outbox,
    touch_statuses,
)
from tests.bot.support import API_TOKEN, make_settings
from tests.support.fakes.smtp import FakeSmtp

Sessions = async_sessionmaker[AsyncSession]
Client = TestClient[Any, Any]
DATA = Path(__file__).resolve().parent.parent / "data" / "email"
MAILGUN_KEY = "key-mailgun-test-0123456789"
HOOK_TOKEN = "email-hook-token"


@pytest.fixture
async def client(engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]) -> Client:
    """The service with Mailgun and the JSON webhook token configured."""
    settings = make_settings(mailgun_signing_key=MAILGUN_KEY, email_webhook_token=HOOK_TOKEN)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


def fixture(name: str, **replace: str) -> dict[str, str]:
    """A Mailgun form post from tests/data/email, placeholders filled, freshly signed."""
    text = (DATA / name).read_text("utf-8")
    for placeholder, value in replace.items():
        text = text.replace(placeholder, value)
    return sign(json.loads(text))


def sign(form: dict[str, str], *, timestamp: float | None = None) -> dict[str, str]:
    """``form`` with a valid Mailgun timestamp, token and signature."""
    stamp = str(int(timestamp if timestamp is not None else time.time()))
    token = uuid.uuid4().hex + uuid.uuid4().hex[:18]
    return {
        **form,
        "timestamp": stamp,
        "token": token,
        "signature": mailgun_signature(MAILGUN_KEY, stamp, token),
    }


async def sent_message_id(sessions: Sessions, lead: Lead) -> str:
    """Send the lead a real email (fake SMTP) and return the Message-ID it carried."""
    async with FakeSmtp() as smtp:
        channel = make_channel(sessions, smtp.url)
        payload = {**PAYLOAD_TEXT, "lead_token": lead.token}
        state, row = await send_via_outbox(
            sessions, channel, lead.email or "", payload, key="t0", lead_id=lead.id
        )
        [got] = await smtp.wait_messages(1)
    assert state == "sent" and row.external_id == got.message["Message-ID"].strip()
    return str(got.message["Message-ID"]).strip()


async def inbound(sessions: Sessions, lead_id: int) -> list[Message]:
    async with sessions() as session:
        query = select(Message).where(Message.lead_id == lead_id, Message.direction == "in")
        return list(await session.scalars(query))


async def get_lead(sessions: Sessions, lead_id: int) -> Lead:
    async with sessions() as session:
        return await session.get_one(Lead, lead_id)


async def test_gmail_reply_matched_by_plus_token(client: Client, sessions: Sessions) -> None:
    async with sessions.begin() as session:
        rep = Rep(name="Sam", email="sam@ourco.com")
        session.add(rep)
        await session.flush()
        rep_id = rep.id
    lead = await make_lead(sessions, owner_rep_id=rep_id)
    await add_touch(sessions, lead.id, "day1")
    form = fixture("gmail_reply.json", LEAD_TOKEN=lead.token, SENT_MESSAGE_ID="<unknown@x>")
    response = await client.post("/webhooks/email", data=form)
    assert response.status == 200
    assert await response.json() == {"status": "reply", "lead_id": lead.id}
    [message] = await inbound(sessions, lead.id)
    assert message.external_id == "<CAF=kq8E2nNQx7pJ1@mail.gmail.com>"
    assert message.body.startswith("Hi Sam,") and "wrote:" not in message.body
    stored = await get_lead(sessions, lead.id)
    assert stored.last_inbound_at is not None and stored.stage == Stage.CONTACTED
    assert await touch_statuses(sessions, lead.id) == ["cancelled"]
    async with sessions() as session:
        [note] = await session.scalars(
            select(OutboxItem).where(OutboxItem.recipient == "sam@ourco.com")
        )
    assert "replied" in note.payload["subject"] and "Thursday at 2pm" in note.payload["text"]


async def test_outlook_reply_matched_by_in_reply_to(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions, "peter@globex-ops.com")
    message_id = await sent_message_id(sessions, lead)
    # Peter answers from another address: only the thread ids can tell whose reply it is.
    form = fixture("outlook_reply.json", SENT_MESSAGE_ID=message_id)
    response = await client.post("/webhooks/email", data=form)
    assert await response.json() == {"status": "reply", "lead_id": lead.id}
    [message] = await inbound(sessions, lead.id)
    assert message.body.endswith("Head of Operations | Globex") and "From:" not in message.body


async def test_apple_mail_reply_matched_by_sender_multipart(
    client: Client, sessions: Sessions
) -> None:
    lead = await make_lead(sessions, "tim@initech.io")
    form = aiohttp.FormData(fixture("apple_mail_reply.json"), default_to_multipart=True)
    response = await client.post("/webhooks/email", data=form)
    assert await response.json() == {"status": "reply", "lead_id": lead.id}
    assert [m.body for m in await inbound(sessions, lead.id)] == ["Sounds good, talk Thursday."]


async def test_signature_checks(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    good = fixture("gmail_reply.json", LEAD_TOKEN=lead.token, SENT_MESSAGE_ID="<x@y>")
    forged = {**good, "signature": "0" * 64}
    assert (await client.post("/webhooks/email", data=forged)).status == 401
    unsigned = {k: v for k, v in good.items() if k != "signature"}
    assert (await client.post("/webhooks/email", data=unsigned)).status == 401
    stale = sign(good, timestamp=time.time() - 3600)
    response = await client.post("/webhooks/email", data=stale)
    assert response.status == 406 and (await response.json())["error"]["code"] == "stale"
    assert await inbound(sessions, lead.id) == []
    # A valid post is applied once; the same token again is a replay (406: do not retry).
    assert (await client.post("/webhooks/email", data=good)).status == 200
    replay = await client.post("/webhooks/email", data=good)
    assert replay.status == 406 and (await replay.json())["error"]["code"] == "replayed"
    # The provider re-posting the same email (same Message-ID, fresh token) changes nothing.
    again = await client.post("/webhooks/email", data=sign(good))
    assert (await again.json())["status"] == "duplicate"
    assert len(await inbound(sessions, lead.id)) == 1


async def test_a_signature_cannot_be_reused_by_moving_characters_into_the_timestamp(
    client: Client, sessions: Sessions
) -> None:
    """The MAC covers timestamp + token: a token starting with "e0" (or any split of the
    same string) must not turn into a second valid post with a "timestamp" like
    "1796527551e0", which float() reads as the same time."""
    lead = await make_lead(sessions)
    good = fixture("gmail_reply.json", LEAD_TOKEN=lead.token, SENT_MESSAGE_ID="<x@y>")
    stamp = good["timestamp"]
    token = "e0" + good["token"][2:]
    good = {**good, "token": token, "signature": mailgun_signature(MAILGUN_KEY, stamp, token)}
    assert (await client.post("/webhooks/email", data=good)).status == 200
    # Another body (a different email), the same signature, the characters moved over.
    other = {
        **good,
        "body-plain": "unsubscribe",
        "stripped-text": "unsubscribe",
        "Message-Id": "<forged@mail.example>",
    }
    for timestamp, rest in ((stamp + "e0", token[2:]), (stamp + "e", token[1:])):
        forged = {**other, "timestamp": timestamp, "token": rest, "signature": good["signature"]}
        response = await client.post("/webhooks/email", data=forged)
        assert response.status in (401, 406), await response.text()
    for timestamp in (f" {stamp}", f"+{stamp}", f"{stamp}.0", f"{stamp}\n"):
        token = uuid.uuid4().hex
        signed = {
            **other,
            "timestamp": timestamp,
            "token": token,
            "signature": mailgun_signature(MAILGUN_KEY, timestamp, token),
        }
        response = await client.post("/webhooks/email", data=signed)
        assert response.status == 406, (timestamp, await response.text())
    assert len(await inbound(sessions, lead.id)) == 1
    assert (await get_lead(sessions, lead.id)).opted_out_at is None


async def test_nul_and_deep_headers_in_a_mailgun_post_are_not_a_500(
    client: Client, sessions: Sessions
) -> None:
    lead = await make_lead(sessions)
    form = fixture("gmail_reply.json", LEAD_TOKEN=lead.token, SENT_MESSAGE_ID="<x@y>")
    nul = sign(
        {
            **form,
            "body-plain": "Thurs\x00day works",
            "stripped-text": "Thurs\x00day",
            "subject": "Re:\x00 hi",
        }
    )
    response = await client.post("/webhooks/email", data=nul)
    assert response.status == 200, await response.text()
    [message] = await inbound(sessions, lead.id)
    assert "\x00" not in message.body and message.body.startswith("Thursday")
    deep = sign({**form, "Message-Id": "<deep@x>", "message-headers": "[" * 20_000})
    response = await client.post("/webhooks/email", data=deep)
    assert response.status == 422, await response.text()
    assert (await response.json())["error"]["code"] == "invalid"


async def test_auto_reply_is_ignored(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    await add_touch(sessions, lead.id, "day3")
    form = fixture("auto_reply_ooo.json", LEAD_TOKEN=lead.token, SENT_MESSAGE_ID="<x@y>")
    response = await client.post("/webhooks/email", data=form)
    assert (await response.json())["status"] == "auto_reply"
    assert await inbound(sessions, lead.id) == []
    assert (await get_lead(sessions, lead.id)).stage == Stage.NEW
    assert await touch_statuses(sessions, lead.id) == ["pending"]


async def test_bounce_suppresses_the_failed_address(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    response = await client.post("/webhooks/email", data=fixture("bounce_dsn.json"))
    assert (await response.json())["status"] == "bounce"
    async with sessions() as session:
        [entry] = await session.scalars(select(Suppression))
    assert (entry.address, entry.reason) == ("jane@acme.com", "hard_bounce")
    assert (await get_lead(sessions, lead.id)).email_status == "bounced: bounce 5.1.1"


async def test_dormant_lead_reply_is_contacted_again(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    async with sessions.begin() as session:
        await transition(session, lead.id, Stage.CONTACTED, reason=None, actor="t", now=NOW)
        await transition(session, lead.id, Stage.DORMANT, reason="quiet", actor="t", now=NOW)
    await add_touch(sessions, lead.id, "reactivation")
    body = {
        "from": "Jane <jane@acme.com>",
        "to": [f"reply+{lead.token}@bot.example.com"],
        "subject": "Re: still interested?",
        "text": "Yes, let's talk.\n\nOn Mon wrote:\n> hi",
        "message_id": "<r1@acme.com>",
        "headers": {"Content-Type": "text/plain"},
    }
    response = await client.post(
        "/webhooks/email", json=body, headers={"Authorization": f"Bearer {HOOK_TOKEN}"}
    )
    assert await response.json() == {"status": "reply", "lead_id": lead.id}
    assert (await get_lead(sessions, lead.id)).stage == Stage.CONTACTED
    assert await touch_statuses(sessions, lead.id) == ["cancelled"]
    async with sessions() as session:
        events = list(
            await session.scalars(
                select(StageEvent).where(StageEvent.lead_id == lead.id).order_by(StageEvent.id)
            )
        )
    assert (events[-1].from_stage, events[-1].to_stage, events[-1].actor) == (
        "dormant",
        "contacted",
        "email",
    )


async def test_reply_saying_unsubscribe_opts_out(client: Client, sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    body = {
        "from": "jane@acme.com",
        "to": f"reply+{lead.token}@bot.example.com",
        "subject": "unsubscribe",
        "text": "",
    }  # the List-Unsubscribe mailto form
    response = await client.post(
        "/webhooks/email", json=body, headers={"Authorization": f"Bearer {API_TOKEN}"}
    )
    assert (await response.json())["status"] == "opt_out"
    stored = await get_lead(sessions, lead.id)
    assert stored.opted_out_at is not None and stored.stage == Stage.NEW
    async with sessions() as session:
        [entry] = await session.scalars(select(Suppression))
    assert entry.reason == "reply_optout"


async def test_json_form_auth_validation_and_unmatched(client: Client, sessions: Sessions) -> None:
    body = {"from": "stranger@nowhere.org", "to": "sales@bot.example.com", "text": "hello"}
    assert (await client.post("/webhooks/email", json=body)).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await client.post("/webhooks/email", json=body, headers=wrong)).status == 401
    auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    response = await client.post("/webhooks/email", json=body, headers=auth)
    assert await response.json() == {"status": "unmatched", "lead_id": None}
    bad = await client.post("/webhooks/email", json={"from": "x", "to": "y"}, headers=auth)
    assert bad.status == 422 and "from" in (await bad.json())["error"]["message"]


async def test_plus_token_survives_a_relay_lower_casing_it(
    client: Client, sessions: Sessions
) -> None:
    lead = await make_lead(sessions)
    await make_lead(sessions, "other@acme.com")
    body = {
        "from": "assistant@acme.com",
        "to": f"reply+{lead.token.lower()}@bot.example.com",
        "subject": "Re: hi",
        "text": "Jane asked me to reply: yes.",
        "message_id": "<l@x>",
    }
    response = await client.post(
        "/webhooks/email", json=body, headers={"Authorization": f"Bearer {HOOK_TOKEN}"}
    )
    assert await response.json() == {"status": "reply", "lead_id": lead.id}
