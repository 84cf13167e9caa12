"""Conversations in the prospect's language (issue 16, item 5), through the real webhook with
the fake Cloud API as WhatsApp: a new conversation runs the script of the language it was
opened in; a clear switch of language moves it to that translation with every slot kept;
"ok" or a number never moves it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.appkeys import SESSIONS
from scheduler.store.models import DialogSessionRow, Lead
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import APP_SECRET, post, settle, text_body
from tests.support.fakes.graph_api import FakeGraphAPI, graph_api

__all__ = ["graph_api"]
Client = TestClient[Any, Any]
PT_SIZE = "Quantas pessoas trabalham na sua empresa?"
ES_BUDGET = "¿Qué presupuesto tienes en mente?"
EN_BUDGET = "What budget do you have in mind for this?"


@pytest.fixture
async def client(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
) -> Client:
    settings = make_settings(
        whatsapp_app_secret=APP_SECRET,
        burst_window_ms=20,
        first_touch=False,
        calendly_url="https://calendly.com/acme/intro",
        **graph_api.settings(),
    )
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


class Prospect:
    def __init__(self, wa_id: str, client: Client, graph: FakeGraphAPI) -> None:
        self.wa_id, self.client, self.graph, self.n = wa_id, client, graph, 0

    async def says(self, text: str) -> str:
        self.n += 1
        body = text_body(self.wa_id, f"wamid.L{self.wa_id}.{self.n}", text, ts=int(time.time()))
        before = len(self.graph.sent_to(self.wa_id))
        assert (await post(self.client, body)).status == 200
        await settle(self.client)
        received = self.graph.sent_to(self.wa_id)
        assert len(received) == before + 1, received[before:]  # one reply per turn
        message = received[-1]
        if message["type"] == "text":
            return str(message["text"]["body"])
        return str(message["interactive"]["body"]["text"])

    async def session(self) -> tuple[str, dict[str, Any]]:
        async with self.client.app[SESSIONS]() as db:
            row = (
                await db.execute(
                    select(DialogSessionRow.script_id, DialogSessionRow.state)
                    .join(Lead, Lead.id == DialogSessionRow.lead_id)
                    .where(Lead.phone == f"+{self.wa_id}")
                )
            ).one()
        return str(row[0]), dict(row[1])


async def test_a_portuguese_opener_runs_the_portuguese_script_and_fills_its_slots(
    client: Client, graph_api: FakeGraphAPI
) -> None:
    prospect = Prospect("5511955550101", client, graph_api)
    reply = await prospect.says("Oi, tudo bem? Precisamos de um site novo para a empresa")
    assert reply.startswith("Oi!") and PT_SIZE in reply
    script_id, state = await prospect.session()
    assert script_id == "b2b_pt"
    assert state["slots"]["need"]["value"] == "build"


async def test_a_clear_switch_moves_the_conversation_and_keeps_the_slots(
    client: Client, graph_api: FakeGraphAPI
) -> None:
    prospect = Prospect("14155550142", client, graph_api)
    first = await prospect.says("Hi! We need a new website")
    assert "How many people" in first
    # "ok" / a bare number are not a language: the conversation stays in English.
    assert EN_BUDGET in await prospect.says("40")
    assert (await prospect.session())[0] == "b2b_default"
    reply = await prospect.says("perdona, mejor en español: tenemos unos 20 mil euros")
    script_id, state = await prospect.session()
    assert script_id == "b2b_es"
    assert state["slots"]["need"]["value"] == "build"  # answered in English, kept
    assert state["slots"]["company_size"]["value"] == "11-50"
    assert state["slots"]["budget"]["value"] == 20000
    assert "¿Y cuándo te gustaría empezar?" in reply


async def test_short_or_ambiguous_messages_never_switch(
    client: Client, graph_api: FakeGraphAPI
) -> None:
    prospect = Prospect("5511955550103", client, graph_api)
    assert PT_SIZE in await prospect.says("Olá! Queremos um aplicativo")
    for text in ("ok", "40", "marketing"):
        await prospect.says(text)
        assert (await prospect.session())[0] == "b2b_pt", text
