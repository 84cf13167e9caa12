"""Published script versions on WhatsApp (issue 14, item 7): a conversation keeps the
version it started on, new ones start on the newest, on every worker; through the real
webhook, with the fake Cloud API as WhatsApp and the console publishing."""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.appkeys import SESSIONS
from bot.script_catalog import CATALOG, REFRESHER
from scheduler.store.models import DialogSessionRow, Lead
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import APP_SECRET, choice_body, post, settle, text_body
from tests.console.support import ADMIN, ConsoleClient, add_users
from tests.support.fakes.graph_api import FakeGraphAPI, graph_api

__all__ = ["graph_api"]
Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parents[3]
V1_TEXT = (ROOT / "dialogs" / "scripts" / "b2b_default.yaml").read_text("utf-8")
V1_FIRST = "What are you looking for help with?"
V1_SECOND = "How many people work at your company?"
V2_FIRST = "What brings you to us today?"
V2_SECOND = "How big is your team?"


def v2_text() -> str:
    text = V1_TEXT.replace(V1_FIRST, V2_FIRST).replace(V1_SECOND, V2_SECOND)
    return re.sub(r"^version: .*$", 'version: "2027-01"', text, count=1, flags=re.M)


@pytest.fixture
def start(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
) -> Callable[..., Awaitable[Client]]:
    """A worker of the service (several may share the store) talking to the fake API."""

    async def make(**overrides: Any) -> Client:
        settings = make_settings(
            whatsapp_app_secret=APP_SECRET,
            burst_window_ms=20,
            first_touch=False,
            calendly_url="https://calendly.com/acme/intro",
            **graph_api.settings(),
            **overrides,
        )
        return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))

    return make


class Prospect:
    """Someone writing to one worker of the bot (``via`` may change between messages)."""

    def __init__(self, wa_id: str, via: Client, graph: FakeGraphAPI) -> None:
        self.wa_id, self.via, self.graph, self.n = wa_id, via, graph, 0

    async def _send(self, body: bytes) -> str:
        before = len(self.graph.sent_to(self.wa_id))
        assert (await post(self.via, body)).status == 200
        await settle(self.via)
        received = self.graph.sent_to(self.wa_id)
        assert len(received) == before + 1, received[before:]  # one reply per turn
        return _body(received[-1])

    async def says(self, text: str) -> str:
        self.n += 1
        wamid = f"wamid.V{self.wa_id}.{self.n}"
        return await self._send(text_body(self.wa_id, wamid, text, ts=int(time.time())))

    async def taps(self, choice: str) -> str:
        self.n += 1
        wamid = f"wamid.V{self.wa_id}.{self.n}"
        return await self._send(choice_body(self.wa_id, wamid, choice, ts=int(time.time())))


def _body(message: dict[str, Any]) -> str:
    if message["type"] == "text":
        return str(message["text"]["body"])
    return str(message["interactive"]["body"]["text"])


async def publish(client: Client, source: str) -> None:
    """Publish ``source`` as the admin, through the console."""
    admin = ConsoleClient(client)
    assert (await admin.login(ADMIN)).status == 200
    response = await admin.post("/console/scripts/b2b_default/publish", {"source": source})
    assert response.status == 200 and response.url.path == "/console/scripts"


async def versions(client: Client) -> dict[str, str]:
    """Each lead's phone and the script version its conversation runs on."""
    async with client.app[SESSIONS]() as db:
        rows = await db.execute(
            select(Lead.phone, DialogSessionRow.script_version).join(
                DialogSessionRow, DialogSessionRow.lead_id == Lead.id
            )
        )
        return {str(phone): str(version) for phone, version in rows}


async def test_a_running_conversation_keeps_its_version_and_new_ones_get_the_new(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    await add_users(client.app[SESSIONS])
    early = Prospect("14155550101", client, graph_api)
    assert V1_FIRST in await early.says("hi")

    await publish(client, v2_text())

    # Started on 2026-12: its next question is 2026-12's, not 2027-01's.
    assert await early.taps("need:build") == V1_SECOND
    late = Prospect("14155550102", client, graph_api)
    first = await late.says("hi")
    assert V2_FIRST in first and V1_FIRST not in first
    assert await late.taps("need:build") == V2_SECOND
    assert await early.says("around 60 people") != V2_SECOND  # still on its own script
    assert await versions(client) == {"+14155550101": "2026-12", "+14155550102": "2027-01"}


async def test_another_worker_sees_the_publication_and_keeps_running_versions(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    a, b = await start(), await start()
    await add_users(a.app[SESSIONS])
    early = Prospect("14155550103", a, graph_api)
    assert V1_FIRST in await early.says("hi")

    await publish(a, v2_text())  # on worker A; B learns of it with its next refresh
    assert b.app[CATALOG].current("b2b_default").version == "2026-12"
    assert await b.app[REFRESHER].refresh()
    assert b.app[CATALOG].current("b2b_default").version == "2027-01"
    assert not await b.app[REFRESHER].refresh()  # nothing new: nothing reloaded

    early.via = b  # the conversation's next message lands on worker B
    assert await early.taps("need:build") == V1_SECOND
    late = Prospect("14155550104", b, graph_api)
    assert V2_FIRST in await late.says("hi")


async def test_a_conversation_whose_version_is_gone_continues_on_the_current_one(
    start: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = tmp_path / "scripts"
    shutil.copytree(ROOT / "dialogs" / "scripts", folder)
    before = await start(dialogs_dir=folder)
    prospect = Prospect("14155550105", before, graph_api)
    assert V1_FIRST in await prospect.says("hi")
    await before.close()  # the service stops; the file changes; it starts again
    (folder / "b2b_default.yaml").write_text(v2_text())
    prospect.via = after = await start(dialogs_dir=folder)

    with caplog.at_level(logging.WARNING, logger="leadbot.scripts"):
        assert await prospect.taps("need:build") == V2_SECOND
    assert "b2b_default version '2026-12' is gone" in caplog.text
    assert await versions(after) == {"+14155550105": "2027-01"}
