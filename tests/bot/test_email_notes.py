"""Notes from emails through the service (issue 15, item 2), on SQLite and Postgres: a reply
posted to ``POST /webhooks/email`` becomes one structured note on its lead, shown in
``GET /api/leads/{id}`` and delivered, signed, as ``lead.note_added``; a redelivery, a
catch-up run or a race makes no second note; a reply the hand-over missed is noted by the
catch-up job; an opt-out gets none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.email.inbound import handle_email
from bot.email.inbound_message import from_json
from bot.email.notes_service import NOTES
from bot.http.appkeys import DISPATCHER
from crm_sync.signing import new_secret
from scheduler.pipeline import outbound_events
from scheduler.store.models import LeadNote, Message, OutboxItem, utcnow
from tests.bot.email_support import make_lead
from tests.bot.support import AUTH, make_settings
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.fakes.webhook_receiver import Receiver, running

Sessions = async_sessionmaker[AsyncSession]
Client = TestClient[Any, Any]
MakeClient = Callable[..., Awaitable[Client]]
REPLY = (
    "Hi Sam,\n\n"
    "Thanks for the proposal. We'd like to move forward, but our budget is around 20k and "
    "we need it live by next month.\n"
    "Honestly the quote is too expensive for a team of 40 people. Can you send a revised "
    "offer by Friday?\n\n"
    "Best,\nJane\n\n"
    "On Mon, Mar 2, 2026 at 9:00 AM Acme Sales <sales@bot.example.com> wrote:\n"
    "> Our budget question: what budget do you have, 500k?\n"
)


def email(message_id: str = "<reply-1@mail.acme.com>", text: str = REPLY) -> dict[str, Any]:
    """The JSON form of a reply from the lead."""
    return {
        "from": "Jane Doe <jane@acme.com>",
        "to": "sales@bot.example.com",
        "subject": "Re: your proposal",
        "text": text,
        "message_id": message_id,
    }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver(secrets={"crm": new_secret()})) as found:
        yield found
    outbound_events.configure(())  # process-wide: never left to the next test
    outbound_events.subscribe(())


async def service(
    engine: AsyncEngine, aiohttp_client: MakeClient, receiver: Receiver, **settings: Any
) -> Client:
    """The service with an event endpoint that wants ``lead.note_added`` only."""
    values = make_settings(
        first_touch=False,
        events_webhook_url=receiver.url("crm"),
        events_webhook_secret=receiver.secrets["crm"],
        events_webhook_events="lead.note_added",
        **settings,
    )
    return await aiohttp_client(create_app(values, engine=engine, run_scheduler=False))


async def post_reply(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/webhooks/email", json=body, headers=AUTH)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    await client.app[NOTES].drain()  # the note is made after the answer, in the background
    return result


async def email_notes(sessions: Sessions, lead_id: int) -> list[LeadNote]:
    async with sessions() as session:
        query = select(LeadNote).where(LeadNote.lead_id == lead_id, LeadNote.kind == "email")
        return list(await session.scalars(query))


async def event_rows(sessions: Sessions) -> list[OutboxItem]:
    async with sessions() as session:
        return list(
            await session.scalars(select(OutboxItem).where(OutboxItem.channel == "events"))
        )


async def test_a_reply_becomes_one_note_on_the_lead_and_goes_out_as_an_event(
    engine: AsyncEngine, aiohttp_client: MakeClient, sessions: Sessions, receiver: Receiver
) -> None:
    client = await service(engine, aiohttp_client, receiver)
    lead = await make_lead(sessions)
    result = await post_reply(client, email())
    assert result == {"status": "reply", "lead_id": lead.id}

    [note] = await email_notes(sessions, lead.id)
    data = note.data
    assert note.author == "email" and note.body == data["summary"]
    assert data["summary"].startswith("Thanks for the proposal.")
    assert data["budget"] == {"text": "20,000", "evidence": "20k"}  # not the quoted 500k
    assert data["timeline"] == {"text": "This quarter", "evidence": "next month"}
    assert [o["kind"] for o in data["objections"]] == ["price"]
    assert data["sentiment"] is None and data["source"] == "rules"
    assert data["email_message_id"] == "<reply-1@mail.acme.com>"
    async with sessions() as session:
        [message] = await session.scalars(select(Message).where(Message.lead_id == lead.id))
    assert data["message_id"] == message.id

    # The API shows it with the lead.
    response = await client.get(f"/api/leads/{lead.id}", headers=AUTH)
    [shown] = (await response.json())["email_notes"]
    assert shown["id"] == note.id and shown["summary"] == data["summary"]
    assert shown["budget"]["evidence"] == "20k" and shown["source"] == "rules"

    # The CRM (any subscribed endpoint) gets it, signed, with the structured fields.
    await client.app[DISPATCHER].deliver_due(utcnow())
    [delivery] = receiver.accepted("crm")
    assert delivery.event["type"] == "lead.note_added"
    assert delivery.event["lead"]["id"] == lead.id
    sent = delivery.event["data"]
    assert sent["note_id"] == note.id and sent["kind"] == "email"
    assert sent["budget"] == data["budget"] and sent["objections"] == data["objections"]


async def test_a_redelivered_email_makes_no_second_note(
    engine: AsyncEngine, aiohttp_client: MakeClient, sessions: Sessions, receiver: Receiver
) -> None:
    client = await service(engine, aiohttp_client, receiver)
    lead = await make_lead(sessions)
    await post_reply(client, email())
    assert (await post_reply(client, email()))["status"] == "duplicate"
    # Nor does a catch-up run, nor a second hand-over of the same message.
    notes = client.app[NOTES].notes
    assert await notes.catch_up(utcnow()) == 0
    [note] = await email_notes(sessions, lead.id)
    assert await notes.note_reply(note.data["message_id"], utcnow()) is None
    assert len(await email_notes(sessions, lead.id)) == 1
    assert len(await event_rows(sessions)) == 1


async def test_a_reply_the_hand_over_missed_is_noted_by_the_catch_up_once(
    engine: AsyncEngine, aiohttp_client: MakeClient, sessions: Sessions, receiver: Receiver
) -> None:
    """A crash between the webhook's commit and its note: the reply is stored, no task ran.
    The catch-up job notes it; two workers racing on it make one note."""
    client = await service(engine, aiohttp_client, receiver)
    lead = await make_lead(sessions)
    async with sessions.begin() as session:
        result = await handle_email(session, from_json(email()), now=utcnow(), notify=None)
    assert result.message_id is not None and await email_notes(sessions, lead.id) == []

    notes = client.app[NOTES].notes
    assert await notes.unnoted(utcnow()) == [result.message_id]
    made = await asyncio.gather(
        notes.note_reply(result.message_id, utcnow()), notes.catch_up(utcnow())
    )
    assert sorted([made[0] is not None, made[1] == 1]) == [False, True]  # one of the two
    assert len(await email_notes(sessions, lead.id)) == 1
    assert await notes.unnoted(utcnow()) == []
    assert len(await event_rows(sessions)) == 1


async def test_an_opt_out_reply_gets_no_note(
    engine: AsyncEngine, aiohttp_client: MakeClient, sessions: Sessions, receiver: Receiver
) -> None:
    client = await service(engine, aiohttp_client, receiver)
    lead = await make_lead(sessions)
    result = await post_reply(client, email(text="Unsubscribe"))
    assert result["status"] == "opt_out"
    notes = client.app[NOTES].notes
    assert await notes.catch_up(utcnow()) == 0
    assert await notes.unnoted(utcnow()) == []  # recorded as done: not read again
    assert await email_notes(sessions, lead.id) == []


async def test_the_model_reads_the_reply_when_configured_and_its_failure_costs_nothing(
    engine: AsyncEngine, aiohttp_client: MakeClient, sessions: Sessions, receiver: Receiver
) -> None:
    async with FakeOpenAI() as fake:
        client = await service(
            engine,
            aiohttp_client,
            receiver,
            llm_model="gpt-4o-mini",
            openai_api_key="sk-test",
            openai_base_url=fake.base_url,
            email_notes_timeout=0.5,
        )
        lead = await make_lead(sessions)
        fake.reply_json(
            {
                "summary": "Jane wants to go ahead; the price is the sticking point.",
                "next_step": "Send a revised offer by Friday",
                "budget": {"text": "about 20k", "evidence": "our budget is around 20k"},
                "timeline": None,
                "objections": [{"kind": "price", "evidence": "the quote is too expensive"}],
                "sentiment": "mixed",
                "injection_suspected": False,
            }
        )
        await post_reply(client, email())
        fake.reply_hang()  # the next reply: the model never answers (nor on the retry)
        fake.reply_hang()
        await post_reply(client, email("<reply-2@mail.acme.com>", "Any news on the offer?"))

    by_model, fallback = sorted(await email_notes(sessions, lead.id), key=lambda n: n.id)
    assert by_model.data["source"] == "llm" and by_model.data["sentiment"] == "mixed"
    assert by_model.data["next_step"] == "Send a revised offer by Friday"
    assert by_model.data["prompt_version"] == "email-note-2026-12-1"
    assert by_model.data["timeline"] is None and by_model.data["facts"]["timeline"]
    assert fallback.data["source"] == "rules"
    assert fallback.body == "Any news on the offer?"
    [why] = fallback.data["notes"]
    assert why.startswith("llm failed")


async def test_a_reply_erased_before_its_note_gets_none(
    engine: AsyncEngine, aiohttp_client: MakeClient, sessions: Sessions, receiver: Receiver
) -> None:
    """The person is forgotten between the reply and its note: nothing of the reply comes
    back as a note or an event."""
    client = await service(engine, aiohttp_client, receiver)
    lead = await make_lead(sessions)
    async with sessions.begin() as session:
        result = await handle_email(session, from_json(email()), now=utcnow(), notify=None)
    response = await client.delete(f"/api/leads/{lead.id}", headers=AUTH)
    assert response.status == 200, await response.text()
    assert result.message_id is not None
    assert await client.app[NOTES].notes.note_reply(result.message_id, utcnow()) is None
    assert await email_notes(sessions, lead.id) == []
    assert await event_rows(sessions) == []
