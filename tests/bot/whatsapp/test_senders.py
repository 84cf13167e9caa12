"""Who a WhatsApp sender is (issue 12, items 1 and 2): whatever the WhatsApp id looks like
(Mexican ``521…``, Argentine ``549…``, an old 8-digit Brazilian mobile, a number we cannot
read) or when there is none (a username-only BSUID sender), the message is stored, answered
at exactly the address Meta sent, and the person is one lead."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.channels.whatsapp import LeadServiceWindow
from bot.http.appkeys import SESSIONS
from bot.whatsapp.hooks import Hooks
from bot.whatsapp.keys import INBOX
from bot.whatsapp.sender import PHONE_FLAG
from scheduler.followups.touches import cancel_pending
from scheduler.pipeline.identity import Kind, Point, points_for_lead
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import (
    IdentityEvent,
    InboxItem,
    Lead,
    Message,
    OutboxItem,
    Touch,
    utcnow,
)
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import APP_SECRET, DATA, MakeClient, post, replies, settle
from tests.support.fakes.graph_api import FakeGraphAPI, graph_api

__all__ = ["graph_api"]
Client = TestClient[Any, Any]
BSUID = "US.13491208655302741918"

# fixture file -> (the address Meta sent, the lead's E.164 phone derived from it)
SENDERS = {
    "sender_mx.json": ("5215512345678", "+525512345678"),
    "sender_ar.json": ("5491123456789", "+5491123456789"),
    "sender_br.json": ("556181234567", "+5561981234567"),
    "sender_in.json": ("919876543210", "+919876543210"),
    "sender_de.json": ("4915123456789", "+4915123456789"),
    "sender_odd.json": ("99912345678", None),
    "bsuid_only.json": (BSUID, None),
}


@pytest.fixture
def start(
    engine: AsyncEngine,
    aiohttp_client: Callable[..., Awaitable[Client]],
    graph_api: FakeGraphAPI,
) -> Callable[..., Awaitable[Client]]:
    async def make() -> Client:
        settings = make_settings(
            whatsapp_app_secret=APP_SECRET, burst_window_ms=20, **graph_api.settings()
        )
        return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))

    return make


def fresh(name: str, *, ts: int | None = None) -> bytes:
    """A fixture body with its messages stamped now (inside the 24-hour window)."""
    body = json.loads((DATA / name).read_text())
    for entry in body["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(ts or int(time.time()))
    return json.dumps(body).encode()


async def leads(client: Client) -> list[Lead]:
    async with client.app[SESSIONS]() as db:
        return list(await db.scalars(select(Lead).order_by(Lead.id)))


@pytest.mark.parametrize("fixture", list(SENDERS))
async def test_every_sender_is_answered_at_the_address_meta_sent(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI, fixture: str
) -> None:
    client = await start()
    address, phone = SENDERS[fixture]
    assert (await post(client, fresh(fixture))).status == 200
    await settle(client)
    (reply,) = graph_api.sent_to(address)  # "to" for a wa_id, "recipient" for a BSUID
    assert reply["type"] in ("text", "interactive")
    (lead,) = await leads(client)
    assert lead.phone == phone
    async with client.app[SESSIONS]() as db:
        (row,) = await db.scalars(select(InboxItem))
        assert row.processed_at is not None and row.error is None
        (message,) = await db.scalars(select(Message).where(Message.direction == "in"))
        assert message.lead_id == lead.id
        (outbox,) = await db.scalars(select(OutboxItem))
        points = await points_for_lead(db, lead.id)
    assert outbox.state == "sent" and outbox.lead_id == lead.id
    if fixture == "bsuid_only.json":
        assert outbox.recipient == BSUID and Point(Kind.BSUID, BSUID) in points
    else:
        assert outbox.recipient == "+" + address
        assert Point(Kind.WHATSAPP, "+" + address) in points
    if fixture == "sender_odd.json":  # answered, and flagged for a human
        assert PHONE_FLAG in lead.attribution
    else:
        assert PHONE_FLAG not in lead.attribution


async def test_the_same_sender_stays_one_lead_across_turns(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    for fixture in ("sender_mx.json", "sender_odd.json", "bsuid_only.json"):
        first = fresh(fixture)
        second = first.replace(b'"wamid.', b'"wamid.AGAIN')
        for body in (first, second):
            assert (await post(client, body)).status == 200
            await settle(client)
    assert len(await leads(client)) == 3
    for address in ("5215512345678", "99912345678", BSUID):
        assert len(graph_api.sent_to(address)) == 2


async def test_a_bsuid_lead_who_later_shows_a_number_stays_one_lead(
    start: Callable[..., Awaitable[Client]], graph_api: FakeGraphAPI
) -> None:
    client = await start()
    now = int(time.time())
    assert (await post(client, fresh("bsuid_only.json", ts=now))).status == 200
    await settle(client)
    assert (await post(client, fresh("bsuid_later_with_phone.json", ts=now + 1))).status == 200
    await settle(client)
    (lead,) = await leads(client)
    assert lead.phone == "+14155550177"
    async with client.app[SESSIONS]() as db:
        points = await points_for_lead(db, lead.id)
        inbound = list(await db.scalars(select(Message).where(Message.direction == "in")))
        events = list(await db.scalars(select(IdentityEvent).order_by(IdentityEvent.id)))
    assert set(points) == {
        Point(Kind.BSUID, BSUID),
        Point(Kind.WHATSAPP, "+14155550177"),
        Point(Kind.PHONE, "+14155550177"),
    }
    assert [m.lead_id for m in inbound] == [lead.id, lead.id]
    added = [(e.kind, e.actor, e.reason) for e in events if e.action == "contact_point_added"]
    assert ("phone", "whatsapp", "seen on WhatsApp") in added
    # The first reply went to the BSUID, the second to the number Meta sent this time.
    assert len(graph_api.sent_to(BSUID)) == 1
    assert len(graph_api.sent_to("14155550177")) == 1


async def test_a_whatsapp_reply_cancels_the_email_touches_of_the_same_person(
    make_client: MakeClient,
) -> None:
    """The form gave the Mexican number in its national form; Meta sends the old ``521``
    form. They are one person: writing on WhatsApp stops the email cadence."""
    client, recorder = await make_client()
    client.app[INBOX].hooks = Hooks(recorder.notify_reps, recorder.start_sequence, cancel_pending)
    now = utcnow()
    async with client.app[SESSIONS].begin() as db:
        form = await intake(
            db,
            LeadIn(email="lupita@acme.mx", phone="+52 55 1234 5678"),
            default_region="US",
            now=now,
        )
        due = now + timedelta(days=1)
        db.add(
            Touch(
                lead_id=form.lead.id,
                sequence="new_lead",
                step="day1",
                cycle=0,
                channel="email",
                due_at=due,
                status="pending",
            )
        )
    assert (await post(client, fresh("sender_mx.json"))).status == 200
    await settle(client)
    async with client.app[SESSIONS]() as db:
        (lead,) = await db.scalars(select(Lead))
        (touch,) = await db.scalars(select(Touch))
    assert lead.id == form.lead.id and lead.email == "lupita@acme.mx"
    assert touch.status == "cancelled" and touch.note == "prospect replied"
    (reply,) = await replies(client, "+5215512345678")
    assert reply["_state"] in ("pending", "sent", "failed")


async def test_the_service_window_knows_a_lead_by_the_wa_id_it_wrote_from(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = utcnow()
    async with sessions.begin() as db:
        await intake(
            db,
            LeadIn(phone="+525512345678"),
            default_region="US",
            now=now,
            points=(Point(Kind.WHATSAPP, "+5215512345678"),),
            values={"last_inbound_at": now - timedelta(hours=1)},
        )
    window = LeadServiceWindow(sessions)
    assert await window.is_open("5215512345678", now)
    await window.closed("5215512345678", now)
    assert not await window.is_open("5215512345678", now)
