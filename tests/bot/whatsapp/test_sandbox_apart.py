"""Sandbox prospects live apart from real leads (issue 12, item 23): in embedded mode a
sandbox "STOP" from the number of a lead that came through the API opted that lead out and
cancelled its follow-ups."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.http.appkeys import SESSIONS
from scheduler.store.models import Lead, Suppression, Touch, utcnow
from tests.bot.support import AUTH
from tests.bot.whatsapp.conftest import Client, Recorder, lead_by_phone

PATH = "/api/sandbox/whatsapp/messages"
PHONE = "+14155550199"


async def test_a_sandbox_stop_never_touches_a_real_lead(wa: tuple[Client, Recorder]) -> None:
    client, recorder = wa
    response = await client.post(
        "/api/leads", json={"name": "Real Person", "phone": PHONE, "source": "form"}, headers=AUTH
    )
    assert response.status == 201
    lead_id = (await response.json())["lead"]["id"]
    async with client.app[SESSIONS].begin() as db:
        db.add(
            Touch(
                lead_id=lead_id,
                sequence="default",
                step="day1",
                channel="whatsapp",
                due_at=utcnow() + timedelta(days=1),
                status="pending",
            )
        )

    stop = await client.post(PATH, json={"from": PHONE, "text": "STOP"}, headers=AUTH)
    assert stop.status == 409
    assert (await stop.json())["error"]["code"] == "real_lead"
    listing = await client.get(PATH, params={"phone": PHONE}, headers=AUTH)
    assert listing.status == 409  # nor does it read a real lead's messages

    async with client.app[SESSIONS]() as db:
        lead = await db.get(Lead, lead_id)
        touches = list(await db.scalars(select(Touch.status).where(Touch.lead_id == lead_id)))
        suppressed = await db.scalar(select(func.count()).select_from(Suppression))
    assert lead is not None and lead.opted_out_at is None and lead.stage == "new"
    assert touches == ["pending"]
    assert suppressed == 0
    assert recorder.cancelled == []


async def test_the_sandbox_still_plays_its_own_prospects(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    first = await client.post(PATH, json={"from": PHONE, "text": "hi"}, headers=AUTH)
    assert first.status == 200, await first.text()
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.source == "sandbox"  # marked: kept apart
    again = await client.post(PATH, json={"from": PHONE, "text": "STOP"}, headers=AUTH)
    assert again.status == 200
    stopped = await lead_by_phone(client, PHONE)
    assert stopped is not None and stopped.opted_out_at is not None


async def test_a_real_lead_takes_its_number_over_from_a_sandbox_prospect(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    for text in ("hi", "STOP"):  # the sandbox prospect opted out
        response = await client.post(PATH, json={"from": PHONE, "text": text}, headers=AUTH)
        assert response.status == 200
    sandbox_lead = await lead_by_phone(client, PHONE)
    assert sandbox_lead is not None and sandbox_lead.opted_out_at is not None

    response = await client.post(
        "/api/leads", json={"name": "Real Person", "phone": PHONE}, headers=AUTH
    )
    assert response.status == 201  # a new lead, not the sandbox's
    body = await response.json()
    assert body["lead"]["id"] != sandbox_lead.id and body["lead"]["phone"] == PHONE
    real = await lead_by_phone(client, PHONE)
    assert real is not None and real.id == body["lead"]["id"] and real.opted_out_at is None
    async with client.app[SESSIONS]() as db:
        old = await db.get(Lead, sandbox_lead.id)
    assert old is not None and old.phone is None
    assert old.attribution["sandbox_phone"] == PHONE
