"""Fixtures for the WhatsApp inbound tests: the app with a known app secret, signed posts,
and recording stand-ins for the rep notifications and the follow-up cadence."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bot.app import create_app
from bot.whatsapp.hooks import Hooks
from bot.whatsapp.keys import INBOX
from bot.whatsapp.signature import HEADER, sign
from scheduler.store.models import InboxItem, Lead, OutboxItem
from tests.bot.support import make_settings

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "verify-me"
DATA = Path(__file__).resolve().parents[2] / "data" / "whatsapp"

Client = TestClient[Any, Any]


@dataclass
class Recorder:
    """Stand-ins for bot.notify / scheduler.followups.touches that record their calls."""

    notified: list[tuple[int, str, str]] = field(default_factory=list)
    started: list[tuple[int, str]] = field(default_factory=list)
    cancelled: list[tuple[int, str]] = field(default_factory=list)

    async def notify_reps(
        self,
        session: AsyncSession,
        *,
        lead: Lead,
        kind: str,
        summary: str,
        details: dict[str, Any],
        now: datetime,
    ) -> list[int]:
        assert details["channel"] == "whatsapp"
        self.notified.append((lead.id, kind, summary))
        return []

    async def start_sequence(
        self, session: AsyncSession, lead_id: int, sequence: str, *, now: datetime
    ) -> int:
        self.started.append((lead_id, sequence))
        return 1

    async def cancel_pending(
        self, session: AsyncSession, lead_id: int, *, reason: str, now: datetime
    ) -> int:
        self.cancelled.append((lead_id, reason))
        return 0

    def hooks(self) -> Hooks:
        return Hooks(self.notify_reps, self.start_sequence, self.cancel_pending)


MakeClient = Callable[..., Awaitable[tuple[Client, Recorder]]]


@pytest.fixture
def make_client(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]
) -> MakeClient:
    """Start the service on the parametrized store; returns (client, recorder)."""

    async def make(**overrides: Any) -> tuple[Client, Recorder]:
        values: dict[str, Any] = {
            "whatsapp_app_secret": APP_SECRET,
            "whatsapp_verify_token": VERIFY_TOKEN,
            "burst_window_ms": 20,
            "calendly_url": "https://calendly.com/acme/intro",
        }
        values.update(overrides)
        client = await aiohttp_client(
            create_app(make_settings(**values), engine=engine, run_scheduler=False)
        )
        recorder = Recorder()
        client.app[INBOX].hooks = recorder.hooks()
        return client, recorder

    return make


@pytest.fixture
async def wa(make_client: MakeClient) -> tuple[Client, Recorder]:
    """The service with default test settings."""
    return await make_client()


def fixture_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()


def text_body(
    wa_id: str, wamid: str, text: str, *, name: str = "Dana", ts: int = 1700000000
) -> bytes:
    """A Cloud API body with one text message."""
    return _body(
        wa_id, name, {"id": wamid, "timestamp": str(ts), "type": "text", "text": {"body": text}}
    )


def choice_body(wa_id: str, wamid: str, choice: str, *, ts: int = 1700000000) -> bytes:
    """A Cloud API body with one interactive button reply."""
    reply = {"type": "button_reply", "button_reply": {"id": choice, "title": choice[:20]}}
    return _body(
        wa_id,
        "Dana",
        {"id": wamid, "timestamp": str(ts), "type": "interactive", "interactive": reply},
    )


def _body(wa_id: str, name: str, message: dict[str, Any]) -> bytes:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": name}, "wa_id": wa_id, "user_id": f"US.{wa_id}"}],
        "messages": [{"from": wa_id, **message}],
    }
    change = {"field": "messages", "value": value}
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [change]}],
    }
    return json.dumps(body).encode()


async def post(client: Client, body: bytes, *, secret: str | None = APP_SECRET) -> Any:
    """POST a webhook body signed with ``secret`` (None: unsigned)."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[HEADER] = sign(secret, body)
    return await client.post("/webhooks/whatsapp", data=body, headers=headers)


async def settle(client: Client) -> None:
    """Wait (bounded) until every scheduled turn has been handled."""
    await client.app[INBOX].settle(timeout=20)


async def count(client: Client, model: Any) -> int:
    from bot.http.appkeys import SESSIONS

    async with client.app[SESSIONS]() as db:
        return int(await db.scalar(select(func.count()).select_from(model)) or 0)


async def replies(client: Client, phone: str) -> list[dict[str, Any]]:
    """The payloads queued for ``phone``, oldest first."""
    from bot.http.appkeys import SESSIONS

    async with client.app[SESSIONS]() as db:
        rows = await db.scalars(
            select(OutboxItem).where(OutboxItem.recipient == phone).order_by(OutboxItem.id)
        )
        return [dict(r.payload, _state=r.state, _key=r.key) for r in rows]


async def lead_by_phone(client: Client, phone: str) -> Lead | None:
    from bot.http.appkeys import SESSIONS

    async with client.app[SESSIONS]() as db:
        lead: Lead | None = await db.scalar(select(Lead).where(Lead.phone == phone))
        return lead


async def inbox_rows(client: Client) -> list[InboxItem]:
    from bot.http.appkeys import SESSIONS

    async with client.app[SESSIONS]() as db:
        return list(await db.scalars(select(InboxItem).order_by(InboxItem.id)))
