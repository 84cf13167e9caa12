"""Signed outbound events end to end: emitted where things happen, in the same transaction,
delivered through the outbox to local Standard Webhooks receivers that verify every
signature the spec's way; endpoint filters, a retry after a 500, the dead letter, and no
event for a change that rolled back. SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.calendly.bookings import BookingContext, apply_event
from bot.channels.events import EventsConfigError, event_endpoints
from bot.whatsapp.effects import TurnContext, apply
from bot.whatsapp.hooks import Hooks
from crm_sync.events_channel import EventsChannel
from crm_sync.signing import new_secret
from dialogs.actions import HandOff
from dialogs.session import Session as DialogSession
from scheduler.delivery.outbox import Dispatcher
from scheduler.intake.importer import import_csv
from scheduler.pipeline import outbound_events
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.outbound_events import CHANNEL, Endpoint, EventKind
from scheduler.pipeline.stages import transition
from scheduler.store.erasure import erase_lead
from scheduler.store.event_deliveries import failed_deliveries
from scheduler.store.models import Lead, OutboxItem, Stage
from tests.support.fakes.calendly import load_event
from tests.support.fakes.webhook_receiver import Receiver, running

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 5, 4, 11, 42, 33, tzinfo=UTC)
NAMES = ("all", "meetings", "flaky", "down")
BACKOFF = (timedelta(seconds=2), timedelta(seconds=5))  # three tries, then failed


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running(Receiver(secrets={n: new_secret() for n in NAMES})) as found:
        yield found


def endpoint(receiver: Receiver, name: str, *kinds: EventKind) -> Endpoint:
    return Endpoint(name, receiver.url(name), receiver.secrets[name], frozenset(kinds))


class Configured(list[Endpoint]):
    """The endpoints in use: set for the emit points (process-wide) and kept for the channel."""

    def use(self, *endpoints: Endpoint) -> None:
        self[:] = endpoints
        outbound_events.configure(endpoints)


@pytest.fixture
def configured(receiver: Receiver) -> Iterator[Configured]:
    yield Configured()
    outbound_events.configure(())  # process-wide: never left to the next test


def dispatcher(sessions: Sessions, endpoints: list[Endpoint]) -> Dispatcher:
    return Dispatcher(sessions, {CHANNEL: EventsChannel(endpoints)}, backoff=BACKOFF)


async def deliver(sessions: Sessions, endpoints: list[Endpoint], *at: datetime) -> None:
    """Run the outbox job at each of ``at`` (the due rows of each moment)."""
    sender = dispatcher(sessions, endpoints)
    channel = sender.channels[CHANNEL]
    try:
        for now in at:
            await sender.deliver_due(now)
    finally:
        await sender.close()
        await cast(EventsChannel, channel).aclose()


async def new_lead(sessions: Sessions, n: int = 1) -> Lead:
    data = LeadIn(name="Jane Doe", email=f"jane{n}@acme.com", company="Acme", source="form")
    async with sessions.begin() as session:
        return (await intake(session, data, default_region="US", now=NOW)).lead


async def move(sessions: Sessions, lead_id: int, to: Stage) -> None:
    async with sessions.begin() as session:
        await transition(session, lead_id, to, reason="test", actor="rep:ana", now=NOW)


async def hand_off(sessions: Sessions, lead_id: int) -> None:
    async with sessions.begin() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        dialog = DialogSession(script_id="s", script_version="1", started_at=NOW, updated_at=NOW)
        ctx = TurnContext(lead, dialog, "wa:wamid.H1", "wamid.H1", NOW, calendly_url="")
        await apply(session, ctx, [HandOff("asked for a human")], cast(Hooks, None))
        await apply(session, ctx, [HandOff("asked again")], cast(Hooks, None))  # still waiting


async def calendly(sessions: Sessions, name: str, token: str) -> None:
    async with sessions.begin() as session:
        await apply_event(session, load_event(name, token=token), now=NOW, ctx=BookingContext())


async def test_each_event_once_with_its_payload_and_each_endpoint_its_kinds(
    sessions: Sessions, receiver: Receiver, configured: Configured
) -> None:
    meetings = (EventKind.MEETING_BOOKED, EventKind.MEETING_CANCELED)
    configured.use(endpoint(receiver, "all"), endpoint(receiver, "meetings", *meetings))

    lead = await new_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED)
    await move(sessions, lead.id, Stage.QUALIFIED)
    await hand_off(sessions, lead.id)
    await calendly(sessions, "invitee_created", lead.token)
    await calendly(sessions, "invitee_canceled", lead.token)
    await calendly(sessions, "invitee_created", lead.token)  # Calendly's retry: a duplicate
    await deliver(sessions, configured, NOW, NOW + timedelta(minutes=1))

    assert all(d.verified and d.status == 200 for d in receiver.deliveries)
    got = [d.event for d in receiver.accepted("all")]
    assert [e["type"] for e in got] == [
        "lead.created",
        "lead.stage_changed",
        "lead.stage_changed",
        "lead.qualified",
        "conversation.handoff_requested",
        "meeting.booked",
        "meeting.canceled",
    ]
    assert len({d.msg_id for d in receiver.accepted("all")}) == 7
    assert all(d.msg_id == d.event["id"] for d in receiver.deliveries)
    created, contacted, qualified_move, qualified, handoff, booked, canceled = got
    assert created["lead"] | {"qualification": None} == {
        "id": lead.id,
        "stage": "new",
        "name": "Jane Doe",
        "email": "jane1@acme.com",
        "phone": None,
        "company": "Acme",
        "source": "form",
        "owner_rep_id": None,
        "qualification": None,
    }
    assert created["occurred_at"] == "2026-05-04T11:42:33Z"
    assert created["data"] == {"stage": "new", "actor": "intake"}
    assert contacted["data"] == {
        "from": "new",
        "to": "contacted",
        "reason": "test",
        "actor": "rep:ana",
    }
    assert contacted["lead"]["stage"] == "contacted"
    assert qualified_move["data"]["to"] == qualified["data"]["to"] == "qualified"
    assert handoff["data"] == {
        "channel": "whatsapp",
        "requested_at": "2026-05-04T11:42:33Z",
        "turn": "wa:wamid.H1",
    }
    assert booked["data"]["start_time"] == "2026-05-08T10:30:00Z"
    assert booked["data"]["calendly_invitee_uri"].endswith("/invitees/INV1")
    assert canceled["data"]["reason"] == "Conflict with another meeting"
    assert booked["lead"]["id"] == canceled["lead"]["id"] == lead.id
    # The filtered endpoint got only the meetings, the same events (same ids).
    assert [d.event for d in receiver.accepted("meetings")] == [booked, canceled]

    # Nothing is sent twice: the rows are sent, the next runs find nothing due.
    before = len(receiver.deliveries)
    await deliver(sessions, configured, NOW + timedelta(hours=1))
    assert len(receiver.deliveries) == before


async def test_a_receiver_that_fails_once_gets_the_event_once_after_a_retry(
    sessions: Sessions, receiver: Receiver, configured: Configured
) -> None:
    configured.use(endpoint(receiver, "flaky", EventKind.LEAD_CREATED))
    receiver.script["flaky"] = [500]
    lead = await new_lead(sessions)

    await deliver(sessions, configured, NOW)
    assert [d.status for d in receiver.deliveries] == [500]
    await deliver(sessions, configured, NOW + timedelta(seconds=1))  # not due yet
    assert len(receiver.deliveries) == 1
    await deliver(sessions, configured, NOW + timedelta(seconds=3), NOW + timedelta(minutes=5))

    assert [d.status for d in receiver.deliveries] == [500, 200]
    [first, retry] = receiver.deliveries
    assert first.msg_id == retry.msg_id and first.event == retry.event  # the same message
    assert [d.event["lead"]["id"] for d in receiver.accepted("flaky")] == [lead.id]


async def test_a_receiver_that_always_fails_ends_dead_lettered_and_listed(
    sessions: Sessions, receiver: Receiver, configured: Configured
) -> None:
    configured.use(endpoint(receiver, "down"), endpoint(receiver, "all"))
    receiver.fail_always.add("down")
    await new_lead(sessions)

    times = [NOW + timedelta(seconds=s) for s in (0, 3, 10, 60, 600)]
    await deliver(sessions, configured, *times)

    assert [d.status for d in receiver.deliveries if d.endpoint == "down"] == [500] * 3
    assert len(receiver.accepted("all")) == 1
    async with sessions() as session:
        [failed] = await failed_deliveries(session, CHANNEL)
        states = dict((await session.execute(select(OutboxItem.key, OutboxItem.state))).all())
    assert failed.endpoint == "down" and failed.url == receiver.url("down")
    assert failed.event_type == "lead.created" and failed.attempts == 3
    assert failed.error is not None and "HTTP 500" in failed.error
    assert sorted(states.values()) == ["failed", "sent"]


async def test_no_event_for_a_move_that_rolled_back(
    sessions: Sessions, receiver: Receiver, configured: Configured
) -> None:
    configured.use(endpoint(receiver, "all"))
    lead = await new_lead(sessions)

    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await transition(session, lead.id, Stage.CONTACTED, reason=None, actor="x", now=NOW)
            raise RuntimeError("the caller failed after the move")
    await move(sessions, lead.id, Stage.LOST)
    await deliver(sessions, configured, NOW)

    got = [(d.event["type"], d.event["data"].get("to")) for d in receiver.accepted("all")]
    assert got == [("lead.created", None), ("lead.stage_changed", "lost")]


async def test_emitting_the_same_fact_twice_stores_one_row_per_endpoint(
    sessions: Sessions, receiver: Receiver, configured: Configured
) -> None:
    configured.use(endpoint(receiver, "all"), endpoint(receiver, "meetings"))
    event = outbound_events.Event(EventKind.MEETING_BOOKED, "booking:9:x", None, NOW, {})
    async with sessions.begin() as session:
        first = await outbound_events.emit(session, event)
        again = await outbound_events.emit(session, event)
    assert len(first) == 2 and again == []


async def test_erasing_the_lead_cancels_and_blanks_its_pending_events(
    sessions: Sessions, receiver: Receiver, configured: Configured
) -> None:
    configured.use(endpoint(receiver, "all"))
    lead = await new_lead(sessions)
    async with sessions.begin() as session:
        await erase_lead(session, lead.id, actor="admin", hash_key=b"k" * 32, now=NOW)
    await deliver(sessions, configured, NOW)

    assert receiver.deliveries == []
    async with sessions() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert (row.state, row.payload) == ("failed", {})


async def test_imported_leads_are_created_events_too(
    sessions: Sessions, receiver: Receiver, configured: Configured, tmp_path: Path
) -> None:
    configured.use(endpoint(receiver, "all", EventKind.LEAD_CREATED))
    path = tmp_path / "leads.csv"
    path.write_text("name,email\nAna One,ana@one.com\nBo Two,bo@two.com\n", "utf-8")
    await import_csv(sessions, path, default_region="US", now=NOW)
    await import_csv(sessions, path, default_region="US", now=NOW)  # duplicates: no events
    await deliver(sessions, configured, NOW)

    got = sorted((d.event["type"], d.event["lead"]["email"]) for d in receiver.accepted())
    assert got == [("lead.created", "ana@one.com"), ("lead.created", "bo@two.com")]


def test_endpoint_settings() -> None:
    secret = new_secret()
    more = f'[{{"name": "zap", "url": "https://hooks.zapier.com/x", "secret": "{secret}",'
    more += ' "events": ["meeting.booked"]}]'
    main, zap = event_endpoints("https://n8n.example/webhook/a", secret, "lead.created", more)
    assert main == Endpoint(
        "default", "https://n8n.example/webhook/a", secret, frozenset({"lead.created"})
    )
    assert zap.name == "zap" and zap.wants("meeting.booked") and not zap.wants("lead.created")
    assert main.wants("lead.created") and not main.wants("lead.qualified")
    assert event_endpoints("", "", "", "") == ()
    bad = [
        ("https://x.example", "nope", "", ""),  # not whsec_
        ("https://x.example", secret, "lead.exploded", ""),  # unknown kind
        ("ftp://x.example", secret, "", ""),
        ("", "", "", "{not json"),
        ("https://x.example", secret, "", more.replace('"zap"', '"default"')),  # duplicate
    ]
    for args in bad:
        with pytest.raises(EventsConfigError):
            event_endpoints(*args)
