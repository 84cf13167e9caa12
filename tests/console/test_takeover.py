"""Live take-over (issue 14, item 4): the queue of conversations waiting for a person, taking
one (two reps never both have it), replying through the outbox on the conversation's channel,
and handing back to the bot. Driven end to end: signed WhatsApp webhooks in, the fake Cloud
API (and a real local SMTP server) out, the console's forms in between."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

from sqlalchemy import select, update

from scheduler.store.models import DialogSessionRow, Lead, Message, OutboxItem, User, utcnow
from tests.bot.email_support import make_lead
from tests.bot.support import AUTH
from tests.console.support import REP
from tests.console.takeover_support import (
    WA_ID,
    Desk,
    MakeDesk,
    make_desk,
    reply,
    reply_form_key,
    take,
)
from tests.support.fakes.graph_api import graph_api
from tests.support.fakes.smtp import FakeSmtp

__all__ = ["graph_api", "make_desk"]


async def _handed_off(make: MakeDesk, **settings: object) -> tuple[Desk, int]:
    desk = await make(**settings)
    dana = desk.prospect()
    await dana.says("hi")
    before = utcnow()
    await dana.says("can I talk to a human please")
    after = utcnow()
    lead = await desk.lead()
    assert lead.bot_paused and lead.human_requested_at is not None
    assert before <= lead.human_requested_at <= after  # the turn's time
    return desk, lead.id


async def test_asking_for_a_person_puts_the_conversation_in_the_queue(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _handed_off(make_desk)
    page = await (await desk.bo.get("/console/takeover")).text()
    waiting = page.split('id="waiting"')[1].split("</ol>")[0]
    assert f'href="/console/takeover/{lead_id}"' in waiting
    assert re.search(r"waiting \d+ s", waiting)  # how long they have waited
    assert "Nobody is waiting" not in page


async def _unowned(desk: Desk, *lead_ids: int) -> None:
    """Leave the leads with no owner: any rep may take their conversations."""
    async with desk.sessions.begin() as session:
        await session.execute(update(Lead).where(Lead.id.in_(lead_ids)).values(owner_rep_id=None))


async def test_a_rep_cannot_take_the_conversation_of_another_reps_lead(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _handed_off(make_desk)
    owner = (await desk.lead()).owner_rep_id
    assert owner is not None  # leads are dealt to reps round-robin
    async with desk.sessions() as session:
        ana_rep = await session.scalar(select(User.rep_id).where(User.email == REP))
    other = desk.bo if owner == ana_rep else desk.ana
    refused = await take(other, lead_id)
    assert refused.status == 403
    assert (await desk.lead()).taken_by_user_id is None


async def test_the_second_rep_to_take_is_told_who_has_it(make_desk: MakeDesk) -> None:
    desk, lead_id = await _handed_off(make_desk)
    await _unowned(desk, lead_id)
    assert (await take(desk.ana, lead_id)).status == 303
    refused = await take(desk.bo, lead_id)
    assert refused.status == 409
    assert "Ana (ana@team.example) has this conversation" in await refused.text()
    lead = await desk.lead()
    assert lead.bot_paused and lead.taken_by_user_id is not None and lead.taken_at is not None

    bo_sees = await (await desk.bo.get("/console/takeover")).text()
    assert "Nobody is waiting" in bo_sees
    assert f"/console/takeover/{lead_id}" in bo_sees.split('id="others"')[1]
    ana_sees = await (await desk.ana.get("/console/takeover")).text()
    assert f"/console/takeover/{lead_id}" in ana_sees.split('id="mine"')[1]


async def test_two_reps_racing_for_a_conversation_one_wins(make_desk: MakeDesk) -> None:
    desk = await make_desk()
    lead_ids = []
    for n in range(4):
        prospect = desk.prospect(f"1415555020{n}")
        await prospect.says("can I talk to a human please")
        lead = await desk.lead(f"+1415555020{n}")
        assert lead.human_requested_at is not None
        lead_ids.append(lead.id)
    await _unowned(desk, *lead_ids)

    for lead_id in lead_ids:
        answers = await asyncio.gather(take(desk.ana, lead_id), take(desk.bo, lead_id))
        statuses = sorted(a.status for a in answers)
        assert statuses == [303, 409], statuses
        loser = next(a for a in answers if a.status == 409)
        assert "has this conversation" in await loser.text()
    async with desk.sessions() as session:
        owners = list(
            await session.scalars(select(Lead.taken_by_user_id).where(Lead.id.in_(lead_ids)))
        )
    assert all(owner is not None for owner in owners)


async def test_a_rep_may_jump_into_a_conversation_nobody_asked_for(make_desk: MakeDesk) -> None:
    desk = await make_desk()
    dana = desk.prospect()
    await dana.says("hi")
    lead = await desk.lead()
    assert lead.human_requested_at is None
    assert (await take(desk.ana, lead.id)).status == 303
    answered = len(desk.to_prospect())
    await dana.says("we are about 40 people")
    assert len(desk.to_prospect()) == answered  # the bot stays quiet
    assert (await desk.lead()).bot_paused


async def test_a_reply_inside_the_window_goes_out_as_text(make_desk: MakeDesk) -> None:
    desk, lead_id = await _handed_off(make_desk)
    await take(desk.ana, lead_id)
    response = await reply(desk.ana, lead_id, "Hi Dana, Ana here. How can I help?")
    assert response.status == 303
    last = desk.to_prospect()[-1]
    assert last["type"] == "text" and last["text"]["body"] == "Hi Dana, Ana here. How can I help?"
    [row] = [r for r in await desk.outbox(lead_id) if r.key.startswith("console:")]
    assert row.state == "sent" and row.payload["kind"] == "text"
    async with desk.sessions() as session:
        stored = await session.scalar(
            select(Message).where(Message.external_id == row.external_id)
        )
    assert stored is not None and stored.direction == "out" and stored.body.startswith("Hi Dana")
    page = await (await desk.ana.get(f"/console/takeover/{lead_id}")).text()
    assert "Hi Dana, Ana here." in page


async def test_a_reply_outside_the_window_sends_the_approved_template(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _handed_off(
        make_desk, whatsapp_template="follow_up", whatsapp_template_language="en_US"
    )
    await take(desk.ana, lead_id)
    await desk.set_lead(lead_id, last_inbound_at=utcnow() - timedelta(days=2))
    page = await (await desk.ana.get(f"/console/takeover/{lead_id}")).text()
    assert "only delivers" in page and "follow_up" in page
    assert (await reply(desk.ana, lead_id, "Are you still interested?")).status == 303
    last = desk.to_prospect()[-1]
    assert last["type"] == "template" and last["template"]["name"] == "follow_up"
    [row] = [r for r in await desk.outbox(lead_id) if r.key.startswith("console:")]
    assert row.payload["note"] == "Are you still interested?"


async def test_outside_the_window_without_a_template_nothing_is_sent(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _handed_off(make_desk)
    await take(desk.ana, lead_id)
    await desk.set_lead(lead_id, last_inbound_at=utcnow() - timedelta(days=2))
    before = len(desk.graph.requests)
    page = await (await desk.ana.get(f"/console/takeover/{lead_id}")).text()
    assert "No reply can go out" in page and 'name="idempotency_key"' not in page
    response = await reply(desk.ana, lead_id, "Still there?", "k" * 16)  # a stale form
    assert response.status == 409
    assert "LEADBOT_WHATSAPP_TEMPLATE" in await response.text()
    assert not [r for r in await desk.outbox(lead_id) if r.key.startswith("console:")]
    assert len(desk.graph.requests) == before


async def test_an_email_reply_is_threaded_on_the_last_email(make_desk: MakeDesk) -> None:
    async with FakeSmtp() as smtp:
        desk = await make_desk(smtp_url=smtp.url, email_from="Sales <sales@seller.example>")
        lead = await make_lead(desk.sessions, "jane@acme.com")
        inbound = {
            "from": "Jane Doe <jane@acme.com>",
            "to": "sales@seller.example",
            "subject": "Pricing question",
            "text": "How much for 40 seats?",
            "message_id": "<q1@acme.com>",
            "in_reply_to": "<first@seller.example>",
            "references": "<first@seller.example>",
        }
        answer = await desk.client.post("/webhooks/email", json=inbound, headers=AUTH)
        assert answer.status == 200, await answer.text()
        assert (await take(desk.ana, lead.id)).status == 303
        assert (await reply(desk.ana, lead.id, "It is 30 EUR a seat.")).status == 303

        received = [r for r in smtp.received if "jane@acme.com" in r.rcpt_tos]
        [mail] = received
        assert mail.message["In-Reply-To"] == "<q1@acme.com>"
        assert mail.message["References"] == "<first@seller.example> <q1@acme.com>"
        assert mail.message["Subject"] == "Re: Pricing question"
        body = mail.message.get_body(("plain",))
        assert body is not None and "It is 30 EUR a seat." in body.get_content()


async def test_a_double_submit_sends_once(make_desk: MakeDesk) -> None:
    desk, lead_id = await _handed_off(make_desk)
    await take(desk.ana, lead_id)
    key = await reply_form_key(desk.ana, lead_id)
    before = len(desk.to_prospect())
    answers = await asyncio.gather(
        reply(desk.ana, lead_id, "Just once", key), reply(desk.ana, lead_id, "Just once", key)
    )
    assert [a.status for a in answers] == [303, 303]
    assert (await reply(desk.ana, lead_id, "Just once", key)).status == 303  # a reload
    assert [m["text"]["body"] for m in desk.to_prospect()[before:]] == ["Just once"]
    assert len([r for r in await desk.outbox(lead_id) if r.key.startswith("console:")]) == 1


async def test_only_the_one_who_has_it_replies_or_hands_back(make_desk: MakeDesk) -> None:
    desk, lead_id = await _handed_off(make_desk)
    assert (await reply(desk.bo, lead_id, "me first", "b" * 16)).status == 403  # nobody has it
    await take(desk.ana, lead_id)
    page = await (await desk.bo.get(f"/console/takeover/{lead_id}")).text()
    assert 'name="idempotency_key"' not in page  # no reply box for Bo
    assert (await reply(desk.bo, lead_id, "me too", "c" * 16)).status == 403
    hand_back = f"/console/takeover/{lead_id}/hand-back"
    assert (await desk.bo.post(hand_back, allow_redirects=False)).status == 403
    async with desk.sessions() as session:
        rows = await session.scalars(select(OutboxItem.key).where(OutboxItem.lead_id == lead_id))
        assert not [k for k in rows if k.startswith("console:")]
    ana = (await desk.lead()).taken_by_user_id
    answer = await desk.admin.post(hand_back, {"owner": str(ana)}, allow_redirects=False)
    assert answer.status == 303  # an admin may hand anyone's back
    assert (await desk.lead()).taken_by_user_id is None


async def test_an_admin_may_take_a_conversation_from_someone(make_desk: MakeDesk) -> None:
    desk, lead_id = await _handed_off(make_desk)
    await _unowned(desk, lead_id)
    await take(desk.ana, lead_id)
    ana = (await desk.lead()).taken_by_user_id
    path = f"/console/takeover/{lead_id}/take"
    assert (await desk.bo.post(path, {"from_user": str(ana)}, allow_redirects=False)).status == 403
    assert (
        await desk.admin.post(path, {"from_user": str(ana)}, allow_redirects=False)
    ).status == 303
    assert (await desk.lead()).taken_by_user_id not in (None, ana)
    # Fenced on who they saw: taking "from Ana" again is refused, naming the admin.
    stale = await desk.bo.post(path, allow_redirects=False)
    assert stale.status == 409 and "admin@team.example" in await stale.text()


async def test_handing_back_lets_the_bot_answer_again(make_desk: MakeDesk) -> None:
    desk, lead_id = await _handed_off(make_desk)
    dana = desk.prospect()
    await take(desk.ana, lead_id)
    await reply(desk.ana, lead_id, "Ana here: what do you need?")
    answered = len(desk.to_prospect())
    await dana.says("never mind")
    assert len(desk.to_prospect()) == answered  # the bot stays quiet while Ana has it

    response = await desk.ana.post(f"/console/takeover/{lead_id}/hand-back", allow_redirects=False)
    assert response.status == 303
    lead = await desk.lead()
    assert not lead.bot_paused
    assert lead.taken_by_user_id is None and lead.human_requested_at is None
    async with desk.sessions() as session:
        state = await session.scalar(
            select(DialogSessionRow.state).where(DialogSessionRow.lead_id == lead_id)
        )
    assert state is not None and state["status"] == "active"

    await dana.says("we are 40 people")
    assert len(desk.to_prospect()) == answered + 1  # the bot's next question
    assert desk.to_prospect()[-1]["to"] == WA_ID
    page = await (await desk.ana.get("/console/takeover")).text()
    assert "Nobody is waiting" in page and "You have no conversation" in page


async def test_resuming_the_bot_on_the_lead_page_lets_it_answer_again(
    make_desk: MakeDesk,
) -> None:
    desk, lead_id = await _handed_off(make_desk)
    dana = desk.prospect()
    answered = len(desk.to_prospect())
    response = await desk.ana.post(f"/console/leads/{lead_id}/bot", {"paused": "0"})
    assert response.status == 200
    lead = await desk.lead()
    assert not lead.bot_paused and lead.human_requested_at is None

    await dana.says("we are 40 people")
    assert len(desk.to_prospect()) == answered + 1  # the dialog left its handoff: it asks on
