"""End to end through the HTTP endpoints, with the fake Cloud API as WhatsApp: a prospect
qualifies (by buttons, or in free text) and gets the lead-tagged Calendly link, the rep is
notified, and Graph failures during the reply follow the outbox rules."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.appkeys import DISPATCHER, SESSIONS
from bot.http.followups import SWEEPER
from scheduler.store.models import OutboxItem, Touch, utcnow
from scheduler.store.reps import add_rep
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import (
    APP_SECRET,
    choice_body,
    lead_by_phone,
    post,
    settle,
    text_body,
)
from tests.support.fakes.graph_api import FakeGraphAPI, Reply, graph_api

__all__ = ["graph_api"]
Client = TestClient[Any, Any]
WA_ID = "14155550123"
PHONE = "+" + WA_ID


@pytest.fixture
def start(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
) -> Callable[..., Awaitable[Client]]:
    async def make(**overrides: Any) -> Client:
        settings = make_settings(
            whatsapp_app_secret=APP_SECRET,
            burst_window_ms=20,
            calendly_url="https://calendly.com/acme/intro",
            **graph_api.settings(),
            **overrides,
        )
        client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
        async with client.app[SESSIONS].begin() as session:
            await add_rep(session, name="Ana", email="ana@seller.com", whatsapp=None, now=utcnow())
        return client

    return make


class Prospect:
    """Someone writing to the bot: messages carry a fresh timestamp (the 24-h window)."""

    def __init__(self, client: Client, graph: FakeGraphAPI) -> None:
        self.client, self.graph, self.n = client, graph, 0

    async def _send(self, body: bytes) -> dict[str, Any]:
        before = len(self.graph.sent_to(WA_ID))
        assert (await post(self.client, body)).status == 200
        await settle(self.client)
        await self.graph.wait_for(len(self.graph.requests))
        received = self.graph.sent_to(WA_ID)
        assert len(received) == before + 1, received[before:]  # one reply per turn
        return received[-1]

    async def says(self, text: str) -> dict[str, Any]:
        self.n += 1
        return await self._send(text_body(WA_ID, f"wamid.E2E{self.n}", text, ts=int(time.time())))

    async def taps(self, message: dict[str, Any], title: str) -> dict[str, Any]:
        action = message["interactive"]["action"]
        options = [b["reply"] for b in action.get("buttons", [])] + [
            row for section in action.get("sections", []) for row in section["rows"]
        ]
        [choice] = [o["id"] for o in options if o["title"].startswith(title)]
        self.n += 1
        return await self._send(
            choice_body(WA_ID, f"wamid.E2E{self.n}", choice, ts=int(time.time()))
        )


async def rep_notifications(client: Client) -> list[OutboxItem]:
    async with client.app[SESSIONS]() as session:
        rows = await session.scalars(select(OutboxItem).where(OutboxItem.key.like("rep:%")))
        return list(rows)


def assert_booking_link(message: dict[str, Any], token: str) -> None:
    assert message["interactive"]["type"] == "cta_url"
    url = message["interactive"]["action"]["parameters"]["url"]
    assert url.startswith("https://calendly.com/acme/intro?") and f"utm_content={token}" in url


async def test_qualified_by_buttons_gets_the_booking_link_and_the_rep_is_told(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    dana = Prospect(client, graph_api)

    message = await dana.says("Hi there")
    message = await dana.taps(message, "Build")
    message = await dana.taps(message, "51")
    message = await dana.says("around 60k")
    message = await dana.taps(message, "ASAP")

    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.stage == "qualified"
    assert_booking_link(message, lead.token)
    [notification] = await rep_notifications(client)
    assert notification.recipient == "ana@seller.com" and ":qualified:" in notification.key
    assert all(r.body["type"] != "template" for r in graph_api.requests)  # inside the window


async def test_qualified_in_free_text(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    dana = Prospect(client, graph_api)

    await dana.says("hi")
    message = await dana.says(
        "we need an app built, we're about 120 people, budget 60k, and we want to start asap"
    )

    lead = await lead_by_phone(client, PHONE)
    assert lead is not None
    assert_booking_link(message, lead.token)
    assert len(await rep_notifications(client)) == 1


async def reply_rows(client: Client) -> list[OutboxItem]:
    async with client.app[SESSIONS]() as session:
        rows = await session.scalars(select(OutboxItem).where(OutboxItem.recipient == PHONE))
        return list(rows)


async def first_turn(client: Client, graph: FakeGraphAPI) -> OutboxItem:
    body = text_body(WA_ID, "wamid.E2EF1", "Hi there", ts=int(time.time()))
    assert (await post(client, body)).status == 200
    await settle(client)
    await graph.wait_for(1)
    [row] = await reply_rows(client)
    return row


async def test_a_500_during_the_reply_is_retried_and_sent_once(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    graph_api.script(Reply.server_error())

    row = await first_turn(client, graph_api)
    assert row.state == "pending"
    for minutes in (1, 2, 3):
        await client.app[DISPATCHER].deliver_due(utcnow() + timedelta(minutes=minutes))

    [row] = await reply_rows(client)
    assert row.state == "sent" and row.external_id == graph_api.requests[1].wamid
    assert len(graph_api.requests) == 2 and len(graph_api.messages) == 1


async def test_a_429_pauses_and_leaves_the_reply_pending(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    graph_api.script(Reply.rate_limited(status=429))

    row = await first_turn(client, graph_api)

    assert row.state == "pending" and row.next_attempt_at is not None
    assert len(graph_api.requests) == 1


async def test_a_timeout_during_the_reply_is_uncertain_and_never_resent(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start(whatsapp_timeout=0.3)
    graph_api.script(Reply.slow(10))

    row = await first_turn(client, graph_api)
    await client.app[DISPATCHER].deliver_due(utcnow() + timedelta(hours=1))

    assert row.state == "uncertain"
    assert len(graph_api.requests) == 1


async def test_a_prospect_who_goes_quiet_gets_the_nudge_on_whatsapp(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    """The quiet cadence's nudge reaches Graph as a message WhatsApp accepts (a follow-up's
    payload is plain text: the channel swaps in the template outside the 24-hour window)."""
    client = await start()
    await Prospect(client, graph_api).says("hi")
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None
    async with client.app[SESSIONS]() as db:
        nudge = await db.scalar(
            select(Touch)
            .where(Touch.lead_id == lead.id, Touch.sequence == "whatsapp_quiet")
            .order_by(Touch.due_at)
            .limit(1)
        )
    assert nudge is not None
    before = len(graph_api.sent_to(WA_ID))

    await client.app[SWEEPER].sweep(nudge.due_at + timedelta(seconds=1))

    sent = graph_api.sent_to(WA_ID)
    assert len(sent) == before + 1
    assert sent[-1]["type"] == "text" and sent[-1]["text"]["body"]
    async with client.app[SESSIONS]() as db:
        touch = await db.get(Touch, nudge.id)
        assert touch is not None and touch.status == "sent"
