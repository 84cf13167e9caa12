"""A WhatsApp prospect who goes quiet mid-qualification gets the quiet cadence (issue 12,
item 6): scheduled with each bot reply to an unfinished conversation, cancelled (and not
scheduled again) when they write, opt out, or the conversation ends.

Real hooks here (the scheduler's start_sequence / cancel_pending on the default cadence),
not the recording stand-ins the other WhatsApp tests use.
"""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select

from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.followups import CADENCE
from bot.whatsapp.hooks import default_hooks
from bot.whatsapp.keys import INBOX
from scheduler.store.models import Touch
from tests.bot.whatsapp.conftest import MakeClient, lead_by_phone, post, settle, text_body

PHONE = "+14155550177"


async def touches(client: object, lead_id: int) -> list[Touch]:
    async with client.app[SESSIONS]() as db:  # type: ignore[attr-defined]
        return list(
            await db.scalars(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.id))
        )


async def test_each_bot_reply_to_an_open_question_schedules_the_quiet_cadence_anew(
    make_client: MakeClient,
) -> None:
    client, _ = await make_client()
    client.app[INBOX].hooks = default_hooks(client.app[SETTINGS], client.app[CADENCE])
    steps = [s.id for s in client.app[CADENCE].sequence("whatsapp_quiet").steps]

    assert (await post(client, text_body(PHONE.lstrip("+"), "wamid.Q1", "hi"))).status == 200
    await settle(client)
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.stage == "contacted"
    first = await touches(client, lead.id)
    assert [(t.sequence, t.step, t.cycle, t.status) for t in first] == [
        ("whatsapp_quiet", step, 0, "pending") for step in steps
    ]
    nudge = first[0]
    # The nudge falls inside the 24-hour window the prospect's message opened.
    assert nudge.channel == "whatsapp"
    assert nudge.due_at - nudge.created_at < timedelta(hours=23)

    # They answer: the old cycle is cancelled, the bot's next question starts a new one.
    text = text_body(PHONE.lstrip("+"), "wamid.Q2", "we are 40 people", ts=1700000100)
    assert (await post(client, text)).status == 200
    await settle(client)
    second = await touches(client, lead.id)
    assert {t.status for t in second if t.cycle == 0} == {"cancelled"}
    assert [(t.step, t.status) for t in second if t.cycle == 1] == [
        (step, "pending") for step in steps
    ]

    # They opt out: everything is cancelled and nothing new is scheduled.
    assert (
        await post(client, text_body(PHONE.lstrip("+"), "wamid.Q3", "STOP", ts=1700000200))
    ).status == 200
    await settle(client)
    last = await touches(client, lead.id)
    assert len(last) == 2 * len(steps)
    assert {t.status for t in last} == {"cancelled"}


async def test_a_conversation_that_ends_schedules_nothing_more(make_client: MakeClient) -> None:
    client, _ = await make_client()
    client.app[INBOX].hooks = default_hooks(client.app[SETTINGS], client.app[CADENCE])
    phone = "+14155550178"
    assert (await post(client, text_body(phone.lstrip("+"), "wamid.H1", "hi"))).status == 200
    await settle(client)
    lead = await lead_by_phone(client, phone)
    assert lead is not None
    assert {t.status for t in await touches(client, lead.id)} == {"pending"}
    # They ask for a person: the bot hands off, and the quiet cadence stops for good.
    text = text_body(phone.lstrip("+"), "wamid.H2", "can I talk to a human please", ts=1700000100)
    assert (await post(client, text)).status == 200
    await settle(client)
    lead = await lead_by_phone(client, phone)
    assert lead is not None and lead.bot_paused
    found = await touches(client, lead.id)
    assert {t.status for t in found} == {"cancelled"} and {t.cycle for t in found} == {0}


async def test_a_sender_clock_ahead_of_ours_does_not_skip_the_cadence(
    make_client: MakeClient,
) -> None:
    client, _ = await make_client()
    client.app[INBOX].hooks = default_hooks(client.app[SETTINGS], client.app[CADENCE])
    phone = "+14155550179"
    ahead = int(time.time()) + 120  # Meta's timestamp two minutes ahead of our clock
    assert (await post(client, text_body(phone.lstrip("+"), "wamid.C1", "hi", ts=ahead))).status
    await settle(client)
    lead = await lead_by_phone(client, phone)
    assert lead is not None and lead.last_inbound_at is not None
    first = await touches(client, lead.id)
    # The sweeper skips a touch whose sequence started before the lead's last message.
    assert first and all(t.created_at >= lead.last_inbound_at for t in first)
