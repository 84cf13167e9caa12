"""Notes from emails reach the CRM (issue 15, items 2 and 3 together), on SQLite and
Postgres: a reply posted to ``POST /webhooks/email`` becomes a structured note on the lead,
and the HubSpot sync pushes it, with its fields, as a note on the lead's contact and deal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.email.notes_service import NOTES
from bot.http.appkeys import DISPATCHER
from scheduler.pipeline import outbound_events
from scheduler.store.models import utcnow
from tests.bot.email_support import make_lead
from tests.bot.support import AUTH, make_settings
from tests.bot.test_email_notes import email
from tests.support.fakes.hubspot import FakeHubSpot, running

Client = TestClient[Any, Any]


@pytest.fixture
async def fake() -> AsyncIterator[FakeHubSpot]:
    async with running(FakeHubSpot()) as found:
        yield found
    outbound_events.subscribe(())  # process-wide: never left to the next test


async def test_an_email_reply_becomes_a_hubspot_note_with_its_fields(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    sessions: async_sessionmaker[AsyncSession],
    fake: FakeHubSpot,
) -> None:
    settings = make_settings(
        first_touch=False, hubspot_token=fake.token, hubspot_api_url=fake.base_url
    )
    client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    lead = await make_lead(sessions)  # created before the sync was configured: not in HubSpot

    response = await client.post("/webhooks/email", json=email(), headers=AUTH)
    assert response.status == 200, await response.text()
    await client.app[NOTES].drain()
    await client.app[DISPATCHER].deliver_due(utcnow())

    [contact] = fake.by_lead("contacts", lead.id)
    assert contact["properties"]["email"] == "jane@acme.com"
    bodies = [n["hs_note_body"] for n in fake.properties("notes")]
    [note] = [b for b in bodies if "Email note" in b]
    assert "Thanks for the proposal." in note
    assert "Budget: 20,000" in note and "20k" in note  # the reading, with their words
    assert "Objections: price" in note
    assert "500k" not in note  # the quoted history is not theirs
