"""A/B experiments on WhatsApp (issue 16, item 6): through the real webhook, with the fake
Cloud API as WhatsApp, a prospect on a variant hears that variant's texts from the first
message to the booking link, on whichever worker handles the turn; the variant is recorded
on the dialog session (its indexed columns) and in the lead's qualification."""

from __future__ import annotations

import hashlib
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
from scheduler.store.models import DialogSessionRow, Lead
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import APP_SECRET, choice_body, post, settle, text_body
from tests.console.support import add_users
from tests.support.fakes.graph_api import FakeGraphAPI, graph_api

__all__ = ["graph_api"]
Client = TestClient[Any, Any]
ROOT = Path(__file__).resolve().parents[3]
EXPERIMENT = ROOT / "tests" / "data" / "experiments" / "b2b_experiment.yaml"
SHORT_GREETING = "Hi! Four quick questions and you're booked in."
SHORT_NEED = "What do you need help with?"
BASE_NEED = "What are you looking for help with?"
SECOND = "How many people work at your company?"


def variant_of(wa_id: str) -> str:
    """The documented assignment, computed here on its own: SHA-256 of "<experiment>:<wa_id>",
    first 8 bytes modulo the total weight (50 + 50), control first."""
    digest = hashlib.sha256(f"greeting-test-1:{wa_id}".encode()).digest()
    return "control" if int.from_bytes(digest[:8], "big") % 100 < 50 else "short"


def wa_id_on(variant: str) -> str:
    return next(f"1415555{i:04d}" for i in range(100) if variant_of(f"1415555{i:04d}") == variant)


@pytest.fixture
def dialogs_dir(tmp_path: Path) -> Path:
    """The shipped scripts, with the default one running the example experiment."""
    folder = tmp_path / "scripts"
    shutil.copytree(ROOT / "dialogs" / "scripts", folder)
    text = EXPERIMENT.read_text("utf-8").replace("id: b2b_experiment", "id: b2b_default", 1)
    (folder / "b2b_default.yaml").write_text(text, "utf-8")
    return folder


@pytest.fixture
def start(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
    dialogs_dir: Path,
) -> Callable[[], Awaitable[Client]]:
    """A worker of the service (several may share the store) talking to the fake API."""

    async def make() -> Client:
        settings = make_settings(
            whatsapp_app_secret=APP_SECRET,
            burst_window_ms=20,
            first_touch=False,
            dialogs_dir=dialogs_dir,
            calendly_url="https://calendly.com/acme/intro",
            **graph_api.settings(),
        )
        return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))

    return make


class Prospect:
    """Someone writing to the bot, through any worker."""

    def __init__(self, wa_id: str, graph: FakeGraphAPI) -> None:
        self.wa_id, self.graph, self.n = wa_id, graph, 0

    async def _send(self, via: Client, body: bytes) -> str:
        before = len(self.graph.sent_to(self.wa_id))
        assert (await post(via, body)).status == 200
        await settle(via)
        received = self.graph.sent_to(self.wa_id)
        assert len(received) == before + 1, received[before:]  # one reply per turn
        message = received[-1]
        if message["type"] == "text":
            return str(message["text"]["body"])
        return str(message["interactive"]["body"]["text"])

    async def says(self, via: Client, text: str) -> str:
        self.n += 1
        body = text_body(self.wa_id, f"wamid.X{self.wa_id}.{self.n}", text, ts=int(time.time()))
        return await self._send(via, body)

    async def taps(self, via: Client, choice: str) -> str:
        self.n += 1
        body = choice_body(
            self.wa_id, f"wamid.X{self.wa_id}.{self.n}", choice, ts=int(time.time())
        )
        return await self._send(via, body)


async def recorded(client: Client) -> dict[str, tuple[Any, ...]]:
    """Each lead's phone: its session's experiment columns, its state's, its qualification's."""
    async with client.app[SESSIONS]() as db:
        rows = await db.execute(
            select(
                Lead.phone,
                DialogSessionRow.experiment,
                DialogSessionRow.variant,
                DialogSessionRow.state,
                Lead.qualification,
            ).join(DialogSessionRow, DialogSessionRow.lead_id == Lead.id)
        )
        return {
            str(phone): (exp, variant, state.get("variant"), (qual or {}).get("experiment"))
            for phone, exp, variant, state, qual in rows
        }


async def test_each_prospect_hears_their_variant_to_the_end_on_any_worker(
    start: Callable[[], Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    a, b = await start(), await start()
    await add_users(a.app[SESSIONS])
    short = Prospect(wa_id_on("short"), graph_api)
    control = Prospect(wa_id_on("control"), graph_api)

    first = await short.says(a, "hi")
    assert SHORT_GREETING in first and SHORT_NEED in first and BASE_NEED not in first
    first = await control.says(b, "hi")
    assert SHORT_GREETING not in first and BASE_NEED in first

    # Later turns on the other worker (a restart is the same: nothing is kept in memory).
    assert await short.taps(b, "need:build") == SECOND
    await short.says(a, "around 60 people")
    await short.says(b, "50k")
    booked = await short.says(a, "asap")
    assert booked.startswith("Great fit!"), booked  # the variant's qualified outcome
    assert await control.taps(a, "need:build") == SECOND

    found = await recorded(a)
    assert found[f"+{short.wa_id}"][:3] == ("greeting-test-1", "short", "short")
    assert found[f"+{short.wa_id}"][3] == {"id": "greeting-test-1", "variant": "short"}
    assert found[f"+{control.wa_id}"][:3] == ("greeting-test-1", "control", "control")
