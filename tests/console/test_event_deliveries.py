"""The dead letters of outbound events on /console/events: listed for admins with the
endpoint, the event and the last error; not for reps."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.conversions import CHANNEL as CONVERSIONS
from crm_sync.events_channel import EventsChannel
from crm_sync.hubspot.channel import CHANNEL as HUBSPOT
from crm_sync.signing import new_secret
from scheduler.delivery.channels import MaybeSent, NotSent, Receipt
from scheduler.delivery.outbox import Dispatcher
from scheduler.pipeline import outbound_events
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.outbound_events import CHANNEL, Endpoint
from scheduler.store.models import utcnow
from scheduler.store.outbox import enqueue_many, outbox_row
from tests.console.support import ConsoleClient
from tests.support.fakes.webhook_receiver import Receiver, running

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def down() -> AsyncIterator[Receiver]:
    receiver = Receiver(secrets={"crm-zap": new_secret()}, fail_always={"crm-zap"})
    async with running(receiver) as found:
        yield found
    outbound_events.configure(())  # process-wide: never left to the next test


async def test_failed_event_deliveries_are_listed_for_admins(
    admin: ConsoleClient, rep: ConsoleClient, sessions: Sessions, down: Receiver
) -> None:
    response = await admin.get("/console/events")
    assert response.status == 200
    assert "None: every event was delivered" in await response.text()

    endpoint = Endpoint("crm-zap", down.url("crm-zap"), down.secrets["crm-zap"])
    outbound_events.configure([endpoint])
    async with sessions.begin() as session:
        data = LeadIn(name="Jane Doe", email="jane@acme.com")
        await intake(session, data, default_region="US", now=utcnow())
    channel = EventsChannel([endpoint])
    sender = Dispatcher(sessions, {CHANNEL: channel}, backoff=(timedelta(seconds=1),))
    start = utcnow()
    for seconds in (0, 2, 60):  # two tries, then the dead letter
        await sender.deliver_due(start + timedelta(seconds=seconds))
    await sender.close()
    await channel.aclose()
    assert [d.status for d in down.deliveries] == [500, 500]

    page = await (await admin.get("/console/events")).text()
    assert "crm-zap" in page and down.url("crm-zap") in page
    assert "lead.created" in page and down.deliveries[0].msg_id in page
    assert "HTTP 500" in page
    assert (await rep.get("/console/events")).status == 403


class _Refusing:
    """A channel whose provider refuses for good (``hubspot``) or never answers (the rest)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        if self.name == HUBSPOT:
            raise NotSent("HTTP 401: the token is invalid", is_transient=False)
        raise MaybeSent("no answer within 10 s")


async def test_crm_and_ad_platform_writes_that_failed_are_listed(
    admin: ConsoleClient, sessions: Sessions
) -> None:
    async with sessions.begin() as session:
        data = LeadIn(email="ana@acme.com")
        lead = (await intake(session, data, default_region="US", now=utcnow())).lead
        keys = {
            HUBSPOT: f"hubspot:lead:{lead.id}:lead:{lead.id}",
            CONVERSIONS: f"capi:lead:{lead.id}:Purchase",
        }
        rows = [
            outbox_row(key=key, channel=name, recipient="x", payload={"text": "t"}, now=utcnow())
            for name, key in keys.items()
        ]
        await enqueue_many(session, rows)
    channels = {name: _Refusing(name) for name in keys}
    sender = Dispatcher(sessions, channels)
    await sender.deliver_due(utcnow())
    await sender.close()

    page = await (await admin.get("/console/events")).text()
    assert keys[HUBSPOT] in page and "HTTP 401: the token is invalid" in page
    assert keys[CONVERSIONS] in page and "uncertain" in page
    assert f'href="/console/leads/{lead.id}"' in page
