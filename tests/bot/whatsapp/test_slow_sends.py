"""Delivery through the fake Cloud API under faults (issue 12): a hanging send delays only its
own conversation and holds no lock; a reply waiting for a retry never goes out after STOP."""

from __future__ import annotations

import asyncio
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
from bot.whatsapp.keys import LOCKS
from scheduler.store.models import OutboxItem, utcnow
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import APP_SECRET, post, settle, text_body
from tests.support.fakes.graph_api import FakeGraphAPI, Reply, graph_api

__all__ = ["graph_api"]
Client = TestClient[Any, Any]
SLOW, FAST = "14155550181", "14155550182"


@pytest.fixture
def start(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
) -> Callable[..., Awaitable[Client]]:
    async def make(**overrides: Any) -> Client:
        settings = make_settings(
            whatsapp_app_secret=APP_SECRET, burst_window_ms=20, **graph_api.settings(), **overrides
        )
        return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))

    return make


async def rows_to(client: Client, wa_id: str) -> list[OutboxItem]:
    async with client.app[SESSIONS]() as db:
        found = await db.scalars(
            select(OutboxItem).where(OutboxItem.recipient == "+" + wa_id).order_by(OutboxItem.id)
        )
        return list(found)


async def until(condition: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Wait (bounded) for a condition on stored state: polling, not a race fix."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(0.01)


async def test_a_hanging_send_delays_neither_another_reply_nor_holds_a_lock(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start(whatsapp_timeout=4.0)
    graph_api.delay_for(SLOW, 60)  # their reply hangs until the client gives up
    now = int(time.time())
    assert (await post(client, text_body(SLOW, "wamid.SLOW1", "hi", ts=now))).status == 200
    await graph_api.wait_for(1, timeout=10)  # the hanging request is out

    assert (await post(client, text_body(FAST, "wamid.FAST1", "hi", ts=now))).status == 200

    async def fast_answered() -> bool:
        rows = await rows_to(client, FAST)
        return bool(rows) and rows[0].state == "sent"

    await until(fast_answered, timeout=10)
    assert graph_api.sent_to(FAST)
    [slow] = await rows_to(client, SLOW)
    assert slow.state == "sending"  # still hanging: the other reply did not wait for it
    async with asyncio.timeout(1):  # both conversations' locks are free
        for wa_id in (SLOW, FAST):
            async with client.app[LOCKS].lock(f"wa:+{wa_id}"):
                pass
    await settle(client)
    [slow] = await rows_to(client, SLOW)
    assert slow.state == "uncertain"  # the timeout after the request left


async def test_a_reply_waiting_for_a_retry_never_goes_out_after_stop(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    graph_api.script(Reply.server_error())  # Graph 500 with an error body: surely not sent
    now = int(time.time())
    assert (await post(client, text_body(SLOW, "wamid.RETRY1", "hi", ts=now))).status == 200
    await settle(client)
    [reply] = await rows_to(client, SLOW)
    assert reply.state == "pending" and reply.next_attempt_at is not None  # in backoff

    assert (await post(client, text_body(SLOW, "wamid.RETRY2", "STOP", ts=now + 1))).status == 200
    await settle(client)
    rows = await rows_to(client, SLOW)
    assert [r.state for r in rows] == ["pending", "sent"]  # the STOP's confirmation went out

    await client.app[DISPATCHER].deliver_due(utcnow() + timedelta(hours=1))
    rows = await rows_to(client, SLOW)
    assert rows[0].state == "failed" and "reply_optout" in (rows[0].error or "")
    sent = graph_api.sent_to(SLOW)
    assert len(sent) == 1 and "won't hear from us" in sent[0]["text"]["body"]
