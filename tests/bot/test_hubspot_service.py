"""The HubSpot sync wired into the service: with ``LEADBOT_HUBSPOT_TOKEN`` set, a lead posted
to ``POST /api/leads`` reaches the fake HubSpot through the outbox (the subscriber stores
the row in the intake's transaction, the service's dispatcher sends it); a stage change
coming back through ``POST /webhooks/hubspot`` moves it. SQLite and Postgres."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.appkeys import DISPATCHER
from scheduler.pipeline import outbound_events
from scheduler.store.models import utcnow
from tests.bot.support import AUTH, make_settings
from tests.support.fakes.hubspot import FakeHubSpot, reference_signature, running

Client = TestClient[Any, Any]
SECRET = "client-secret"
PUBLIC = "https://bot.example"


@pytest.fixture
async def fake() -> AsyncIterator[FakeHubSpot]:
    async with running(FakeHubSpot()) as found:
        yield found


@pytest.fixture
async def service(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]], fake: FakeHubSpot
) -> AsyncIterator[Client]:
    settings = make_settings(
        hubspot_token=fake.token,
        hubspot_api_url=fake.base_url,
        hubspot_client_secret=SECRET,
        public_url=PUBLIC,
    )
    yield await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    outbound_events.subscribe(())  # process-wide: never left to the next test


async def test_a_posted_lead_reaches_hubspot_and_a_deal_moved_there_moves_it(
    service: Client, fake: FakeHubSpot
) -> None:
    posted = await service.post(
        "/api/leads",
        json={"name": "Jane Doe", "email": "jane@acme.com", "company": "Acme"},
        headers=AUTH,
    )
    assert posted.status in (200, 201), await posted.text()
    lead_id = (await posted.json())["lead"]["id"]

    await service.app[DISPATCHER].deliver_due(utcnow())

    [contact] = fake.by_lead("contacts", lead_id)
    assert contact["properties"]["email"] == "jane@acme.com"
    [deal] = fake.by_lead("deals", lead_id)
    assert deal["properties"]["dealstage"] in ("appointmentscheduled", "qualifiedtobuy")

    # A rep marks the deal lost in HubSpot.
    body = json.dumps(
        [
            {
                "eventId": 7001,
                "subscriptionType": "deal.propertyChange",
                "objectId": int(deal["id"]),
                "propertyName": "dealstage",
                "propertyValue": "closedlost",
                "occurredAt": 1714822953000,
            }
        ]
    ).encode()
    timestamp = str(int(time.time() * 1000))
    uri = f"{PUBLIC}/webhooks/hubspot"
    reply = await service.post(
        "/webhooks/hubspot",
        data=body,
        headers={
            "X-HubSpot-Signature-v3": reference_signature(SECRET, "POST", uri, body, timestamp),
            "X-HubSpot-Request-Timestamp": timestamp,
        },
    )
    assert (await reply.json())["results"][0]["status"] == "moved"
    lead = await (await service.get(f"/api/leads/{lead_id}", headers=AUTH)).json()
    assert lead["lead"]["stage"] == "lost"
    await service.app[DISPATCHER].deliver_due(utcnow())  # the move's own sync: the same stage
    assert fake.by_lead("deals", lead_id)[0]["properties"]["dealstage"] == "closedlost"
    assert len(fake.objects["deals"]) == 1
