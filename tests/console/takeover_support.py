"""The take-over's test desk: the service with the fake Cloud API as WhatsApp, three signed-in
console users (Ana and Bo, reps; an admin), a prospect writing signed webhooks, and a
reader of server-sent events."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.console import takeover_events
from bot.whatsapp.keys import INBOX
from bot.whatsapp.signature import HEADER, sign
from scheduler.store.engine import session_factory
from scheduler.store.models import Lead, OutboxItem
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import text_body
from tests.console.support import ADMIN, OTHER_REP, REP, ConsoleClient, Team
from tests.support.fakes.graph_api import FakeGraphAPI

APP_SECRET = "takeover-app-secret"
WA_ID = "14155550123"
PHONE = "+" + WA_ID
Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]
MakeClient = Callable[..., Awaitable[Client]]
_KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
_EVENTS = re.compile(r'id="timeline"[^>]*data-events="([^"]+)"')


@dataclass
class Prospect:
    """Someone writing on WhatsApp (fresh timestamps: their 24-hour window is open)."""

    desk: Desk
    wa_id: str = WA_ID
    sent: int = 0

    async def says(self, text: str) -> None:
        """Post a signed webhook with ``text`` and wait until the bot handled it."""
        self.sent += 1
        body = text_body(self.wa_id, f"wamid.{self.wa_id}.{self.sent}", text, ts=int(time.time()))
        response = await self.desk.client.post(
            "/webhooks/whatsapp",
            data=body,
            headers={"Content-Type": "application/json", HEADER: sign(APP_SECRET, body)},
        )
        assert response.status == 200, await response.text()
        await self.desk.client.app[INBOX].settle(timeout=20)

    async def status(self, wamid: str, status: str) -> None:
        """Meta's delivery status webhook about a message we sent them."""
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1"},
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    "recipient_id": self.wa_id,
                }
            ],
        }
        change = {"field": "messages", "value": value}
        body = json.dumps(
            {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
        ).encode()
        response = await self.desk.client.post(
            "/webhooks/whatsapp",
            data=body,
            headers={"Content-Type": "application/json", HEADER: sign(APP_SECRET, body)},
        )
        assert response.status == 200


@dataclass
class Desk:
    """The service and the people using it."""

    client: Client
    graph: FakeGraphAPI
    sessions: Sessions
    ana: ConsoleClient
    bo: ConsoleClient
    admin: ConsoleClient
    prospects: dict[str, Prospect] = field(default_factory=dict)

    def prospect(self, wa_id: str = WA_ID) -> Prospect:
        """The prospect writing from ``wa_id``."""
        return self.prospects.setdefault(wa_id, Prospect(self, wa_id))

    async def lead(self, phone: str = PHONE) -> Lead:
        """The lead of ``phone``, as stored now."""
        async with self.sessions() as session:
            lead = await session.scalar(select(Lead).where(Lead.phone == phone))
        assert lead is not None
        return lead

    async def set_lead(self, lead_id: int, **values: Any) -> None:
        """Change the lead's columns directly (a test's shortcut to a situation)."""
        async with self.sessions.begin() as session:
            await session.execute(update(Lead).where(Lead.id == lead_id).values(**values))

    async def outbox(self, lead_id: int) -> list[OutboxItem]:
        """The lead's outbox rows, oldest first."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(OutboxItem).where(OutboxItem.lead_id == lead_id).order_by(OutboxItem.id)
            )
            return list(rows)

    def to_prospect(self, wa_id: str = WA_ID) -> list[dict[str, Any]]:
        """What reached the prospect through the fake Cloud API."""
        return self.graph.sent_to(wa_id)


async def take(user: ConsoleClient, lead_id: int) -> ClientResponse:
    """``user`` presses Take (the redirect not followed)."""
    return await user.post(f"/console/takeover/{lead_id}/take", allow_redirects=False)


async def reply_form_key(user: ConsoleClient, lead_id: int) -> str:
    """The idempotency key of the reply form on the conversation page."""
    page = await (await user.get(f"/console/takeover/{lead_id}")).text()
    found = _KEY.search(page)
    assert found, "no reply form on the page"
    return found.group(1)


async def reply(
    user: ConsoleClient, lead_id: int, text: str, key: str | None = None
) -> ClientResponse:
    """``user`` sends ``text`` from the conversation page's reply form."""
    key = key or await reply_form_key(user, lead_id)
    return await user.post(
        f"/console/takeover/{lead_id}/reply",
        {"text": text, "idempotency_key": key},
        allow_redirects=False,
    )


async def events_url(user: ConsoleClient, lead_id: int) -> str:
    """The live stream the conversation page connects to (with its starting position)."""
    page = await (await user.get(f"/console/takeover/{lead_id}")).text()
    found = _EVENTS.search(page)
    assert found, "no live timeline on the page"
    return found.group(1).replace("&amp;", "&")


@dataclass(frozen=True)
class ServerEvent:
    """One server-sent event."""

    event: str
    data: str
    id: str | None


class EventReader:
    """Reads server-sent events from a streaming response, without sleeping."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 10.0) -> ServerEvent:
        """The next event (comments and keep-alives skipped)."""
        async with asyncio.timeout(timeout):
            event, event_id = "message", None
            data: list[str] = []
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("the stream ended")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data or event != "message":
                        return ServerEvent(event, "\n".join(data), event_id)
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    event_id = value

    async def until(self, kind: str, timeout: float = 10.0) -> list[ServerEvent]:
        """Events up to and including the first of ``kind`` (``ready`` ones left out)."""
        seen: list[ServerEvent] = []
        while True:
            event = await self.next(timeout)
            if event.event != "ready":
                seen.append(event)
            if event.event == kind:
                return seen


MakeDesk = Callable[..., Awaitable[Desk]]


@pytest.fixture
def make_desk(
    engine: AsyncEngine,
    aiohttp_client: MakeClient,
    graph_api: FakeGraphAPI,
    team: Team,
    monkeypatch: pytest.MonkeyPatch,
) -> MakeDesk:
    """Start the service (settings overridable) with Ana, Bo and the admin signed in. Live
    streams poll the store every 20 ms (tests wait for events, never for time)."""
    monkeypatch.setattr(takeover_events, "POLL_SECONDS", 0.02)

    async def make(**overrides: Any) -> Desk:
        settings = make_settings(
            first_touch=False,
            whatsapp_app_secret=APP_SECRET,
            burst_window_ms=20,
            **graph_api.settings(),
            **overrides,
        )
        app = create_app(settings, engine=engine, run_scheduler=False)
        takeover_events.setup(app)  # (a no-op once the console's setup does it)
        client = await aiohttp_client(app)
        users = [ConsoleClient(await aiohttp_client(client.server)) for _ in range(3)]
        # Together: each login hashes a password in a worker thread.
        logins = await asyncio.gather(
            *(u.login(email) for u, email in zip(users, (REP, OTHER_REP, ADMIN), strict=True))
        )
        assert all(response.status == 200 for response in logins)
        ana, bo, admin = users
        return Desk(client, graph_api, session_factory(engine), ana, bo, admin)

    return make
