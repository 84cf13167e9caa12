"""The service wires outbound events from its settings: an intake through the JSON API is
announced, signed, to the configured endpoints by the app's own outbox; bad endpoint
settings stop the start with a message that names them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from bot.app import create_app
from bot.channels import build_channels
from bot.channels.events import EventsConfigError
from bot.cli.main import app as cli
from bot.http.appkeys import DISPATCHER
from crm_sync.signing import new_secret
from scheduler.pipeline import outbound_events
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.models import OutboxItem, utcnow
from tests.bot.support import AUTH, make_settings
from tests.support.fakes.webhook_receiver import Receiver, running

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver(secrets={"main": new_secret(), "zap": new_secret()})) as found:
        yield found
    outbound_events.configure(())  # process-wide: never left to the next test


async def test_an_api_intake_reaches_every_endpoint_that_wants_it(
    engine: AsyncEngine, aiohttp_client: MakeClient, receiver: Receiver
) -> None:
    zap = {
        "name": "zap",
        "url": receiver.url("zap"),
        "secret": receiver.secrets["zap"],
        "events": ["meeting.booked"],
    }
    settings = make_settings(
        first_touch=False,
        events_webhook_url=receiver.url("main"),
        events_webhook_secret=receiver.secrets["main"],
        events_webhook_events="lead.created",
        events_webhooks=json.dumps([zap]),
    )
    client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    body = {"email": "jane@acme.com", "name": "Jane Doe", "source": "form"}
    response = await client.post("/api/leads", json=body, headers=AUTH)
    assert response.status == 201, await response.text()
    lead_id = (await response.json())["lead"]["id"]

    await client.app[DISPATCHER].deliver_due(utcnow())

    [delivery] = receiver.deliveries
    assert (delivery.endpoint, delivery.verified, delivery.status) == ("main", True, 200)
    assert delivery.event["type"] == "lead.created"
    assert delivery.event["lead"]["id"] == lead_id


def test_bad_endpoint_settings_are_named_at_start() -> None:
    settings = make_settings(events_webhook_url="https://n8n.example/webhook/x")
    with pytest.raises(EventsConfigError, match="LEADBOT_EVENTS_WEBHOOK_URL.*whsec_"):
        build_channels(settings)


def test_the_import_command_announces_new_leads(tmp_path: Path) -> None:
    """``leadbot leads import`` is a process of its own: it stores the events too (the
    service's outbox job delivers them)."""
    path = tmp_path / "leads.csv"
    path.write_text("name,email\nAna One,ana@one.com\n", "utf-8")
    secret = new_secret()
    env = {
        "LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "LEADBOT_EVENTS_WEBHOOK_URL": "https://n8n.example/webhook/leads",
        "LEADBOT_EVENTS_WEBHOOK_SECRET": secret,
    }
    try:
        result = CliRunner().invoke(cli, ["leads", "import", str(path)], env=env)
        assert result.exit_code == 0, result.output
        assert outbound_events.endpoints()[0].url == "https://n8n.example/webhook/leads"
        bad = CliRunner().invoke(
            cli, ["leads", "import", str(path)], env=env | {"LEADBOT_EVENTS_WEBHOOK_SECRET": "x"}
        )
        assert bad.exit_code != 0 and "LEADBOT_EVENTS_WEBHOOK_URL" in bad.output
    finally:
        outbound_events.configure(())

    async def stored() -> list[tuple[str, str]]:
        engine = create_engine(env["LEADBOT_DATABASE_URL"])
        try:
            async with session_factory(engine)() as session:
                rows = await session.execute(select(OutboxItem.channel, OutboxItem.recipient))
                return [(c, r) for c, r in rows]
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) == [("events", "https://n8n.example/webhook/leads")]
