"""A dormant lead who writes on WhatsApp (a reactivation reached them) is back in the
pipeline: Dormant → Contacted, the owner notified (kind ``replied``), and the bot answers
on WhatsApp, where the conversation goes on. A "stop" is an opt-out, not a reply."""

from __future__ import annotations

from sqlalchemy import select

from bot.http.appkeys import SESSIONS
from scheduler.pipeline.stages import transition
from scheduler.store.models import StageEvent, utcnow
from tests.bot.whatsapp.conftest import (
    Client,
    MakeClient,
    lead_by_phone,
    post,
    replies,
    settle,
    text_body,
)

PHONE = "+14155550190"


async def dormant_whatsapp_lead(client: Client) -> int:
    """A lead who wrote once, then went dormant."""
    assert (await post(client, text_body(PHONE.lstrip("+"), "wamid.D1", "hi"))).status == 200
    await settle(client)
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.stage == "contacted"
    async with client.app[SESSIONS].begin() as db:
        await transition(db, lead.id, "dormant", reason="quiet", actor="test", now=utcnow())
    return lead.id


async def test_a_dormant_lead_writing_is_contacted_again_and_the_owner_told(
    make_client: MakeClient,
) -> None:
    client, recorder = await make_client()
    lead_id = await dormant_whatsapp_lead(client)
    before = len(await replies(client, PHONE))
    body = text_body(PHONE.lstrip("+"), "wamid.D2", "Hi again, is this still on?", ts=1700000500)
    assert (await post(client, body)).status == 200
    await settle(client)

    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.stage == "contacted"
    async with client.app[SESSIONS]() as db:
        last = await db.scalar(
            select(StageEvent).where(StageEvent.lead_id == lead_id).order_by(StageEvent.id.desc())
        )
    assert last is not None and (last.from_stage, last.to_stage) == ("dormant", "contacted")
    assert last.reason == "replied on WhatsApp"
    assert [(k, s) for _, k, s in recorder.notified if k == "replied"] == [
        ("replied", "on WhatsApp: Hi again, is this still on?")
    ]
    assert len(await replies(client, PHONE)) > before  # the bot answers on WhatsApp


async def test_a_dormant_lead_saying_stop_is_opted_out_not_reactivated(
    make_client: MakeClient,
) -> None:
    client, recorder = await make_client()
    await dormant_whatsapp_lead(client)
    body = text_body(PHONE.lstrip("+"), "wamid.D3", "STOP", ts=1700000500)
    assert (await post(client, body)).status == 200
    await settle(client)
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.stage == "dormant" and lead.opted_out_at is not None
    assert not [k for _, k, _ in recorder.notified if k == "replied"]
