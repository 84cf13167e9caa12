"""HubSpot sync end to end against a local fake speaking HubSpot's v3 wire format: leads
become one contact and one deal each (stage mapped, owner mapped, associated), notes with
the qualification's evidence on both; every retry (an outage mid-backfill, an answer lost
after the write, a 429) loses nothing and creates no twin. SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_sync.hubspot import backfill
from crm_sync.hubspot.channel import CHANNEL, HubSpotChannel
from crm_sync.hubspot.client import HubSpotClient
from crm_sync.hubspot.notes import SEARCH_LAG
from crm_sync.hubspot.rate_limit import RateLimiter
from crm_sync.hubspot.stage_map import parse_stage_map
from crm_sync.hubspot.subscriber import HubSpotSubscriber, sync_row
from scheduler.delivery.outbox import Dispatcher
from scheduler.pipeline import outbound_events
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.erasure import erase_lead
from scheduler.store.leads import store_qualification
from scheduler.store.models import Lead, OutboxItem, Rep, Stage
from scheduler.store.notes import add_note
from scheduler.store.outbox import enqueue_many
from tests.support.fakes.hubspot import FakeHubSpot, running

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 5, 4, 11, 42, 33, tzinfo=UTC)
NOTES_CREATE = "/crm/v3/objects/notes/batch/create"
BACKOFF = (timedelta(seconds=2), timedelta(seconds=5), timedelta(seconds=15))
QUALIFICATION = {
    "decision": "qualified",
    "tier": "hot",
    "fit_score": 82,
    "intent_score": 70,
    "reasons": ["team size in the ICP"],
    "slots": {"team_size": {"value": "51-200", "evidence": "about 200 people", "unknown": False}},
}


class Clock:
    """The channel's time, moved by the test (the search-lag rule reads it)."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def fake() -> AsyncIterator[FakeHubSpot]:
    async with running(FakeHubSpot(owners={"ana@seller.com": "77"})) as found:
        yield found


@pytest.fixture
def subscribed() -> Iterator[None]:
    outbound_events.subscribe([HubSpotSubscriber()])
    yield
    outbound_events.subscribe(())  # process-wide: never left to the next test


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def channel(
    fake: FakeHubSpot, sessions: Sessions, clock: Clock
) -> AsyncIterator[HubSpotChannel]:
    client = HubSpotClient(fake.token, api_url=fake.base_url, limiter=RateLimiter())
    found = HubSpotChannel(
        client, sessions, stages=parse_stage_map(""), pipeline="default", clock=clock
    )
    yield found
    await found.aclose()


async def deliver(sessions: Sessions, channel: HubSpotChannel, *at: datetime) -> None:
    """Run the outbox job at each of ``at``."""
    sender = Dispatcher(sessions, {CHANNEL: channel}, backoff=BACKOFF)
    try:
        for now in at:
            await sender.deliver_due(now, limit=500)
    finally:
        await sender.close()


async def new_lead(sessions: Sessions, n: int, *, email: bool = True) -> int:
    data = LeadIn(
        name=f"Jane Doe{n}",
        email=f"jane{n}@acme.com" if email else None,
        phone=f"+1415555{n:04d}",
        company="Acme",
        source="form",
    )
    async with sessions.begin() as session:
        return (await intake(session, data, default_region="US", now=NOW)).lead.id


async def move(sessions: Sessions, lead_id: int, to: Stage) -> None:
    async with sessions.begin() as session:
        await transition(session, lead_id, to, reason="test", actor="rep:ana", now=NOW)


async def states(sessions: Sessions) -> dict[str, int]:
    async with sessions() as session:
        rows = await session.execute(
            select(OutboxItem.state, func.count())
            .where(OutboxItem.channel == CHANNEL)
            .group_by(OutboxItem.state)
        )
        return {state: count for state, count in rows}


async def test_a_lead_becomes_one_contact_one_deal_and_notes_and_retries_make_no_twins(
    sessions: Sessions, fake: FakeHubSpot, channel: HubSpotChannel, subscribed: None
) -> None:
    lead_id = await new_lead(sessions, 1)
    async with sessions.begin() as session:
        rep = Rep(name="Ana", email="ana@seller.com", active=True, created_at=NOW)
        session.add(rep)
        await session.flush()
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        lead.owner_rep_id = rep.id
        await store_qualification(
            session, lead_id, qualification=dict(QUALIFICATION), enrichment={}, now=NOW
        )
    await move(sessions, lead_id, Stage.CONTACTED)
    await move(sessions, lead_id, Stage.QUALIFIED)

    await deliver(sessions, channel, NOW)

    assert await states(sessions) == {"sent": 4}  # created, 2 stage moves, lead.qualified
    [contact] = fake.objects["contacts"].values()
    assert contact["properties"]["email"] == "jane1@acme.com"
    assert contact["properties"]["leadbot_lead_id"] == str(lead_id)
    [deal] = fake.objects["deals"].values()
    assert deal["properties"]["dealstage"] == "presentationscheduled"  # qualified, mapped
    assert deal["properties"]["pipeline"] == "default"
    assert deal["properties"]["hubspot_owner_id"] == "77"  # ana@seller.com's owner
    assert ("deals", deal["id"], "contacts", contact["id"]) in fake.associations
    [note] = fake.objects["notes"].values()
    assert "about 200 people" in note["properties"]["hs_note_body"]  # the evidence
    assert ("notes", note["id"], "contacts", contact["id"]) in fake.associations
    assert ("notes", note["id"], "deals", deal["id"]) in fake.associations

    # A new fact (a note, a stage move) syncs the same objects again: no twins.
    async with sessions.begin() as session:
        await add_note(session, lead_id, kind="email", author="bot", body="Budget 10k", now=NOW)
    await move(sessions, lead_id, Stage.PROPOSAL_SENT)
    await deliver(sessions, channel, NOW)

    assert len(fake.objects["contacts"]) == 1
    [deal] = fake.objects["deals"].values()
    assert deal["properties"]["dealstage"] == "contractsent"
    bodies = sorted(n["properties"]["hs_note_body"][:20] for n in fake.objects["notes"].values())
    assert len(bodies) == 2 and any("Email note" in b for b in bodies)


async def test_a_lead_without_email_updates_the_contact_a_rep_made_for_its_phone(
    sessions: Sessions, fake: FakeHubSpot, channel: HubSpotChannel, subscribed: None
) -> None:
    lead_id = await new_lead(sessions, 2, email=False)
    existing = fake._create("contacts", {"phone": "+14155550002", "firstname": "J"})

    await deliver(sessions, channel, NOW)

    [contact] = fake.objects["contacts"].values()
    assert contact["id"] == existing["id"]
    assert contact["properties"]["leadbot_lead_id"] == str(lead_id)
    [deal] = fake.objects["deals"].values()
    assert ("deals", deal["id"], "contacts", contact["id"]) in fake.associations


async def test_an_outage_mid_backfill_loses_nothing_and_creates_no_twins(
    sessions: Sessions, fake: FakeHubSpot, channel: HubSpotChannel
) -> None:
    # Leads made before the sync was configured: only the backfill pushes them.
    lead_ids = [await new_lead(sessions, n) for n in range(1, 26)]
    async with sessions.begin() as session:
        for lead_id in lead_ids:
            await store_qualification(
                session, lead_id, qualification=dict(QUALIFICATION), enrichment={}, now=NOW
            )
    sender = Dispatcher(sessions, {CHANNEL: channel}, backoff=BACKOFF)
    try:
        pages = 0
        async for ids in backfill.pages(sessions, "r1", NOW, page=10):
            pages += 1
            if pages == 2:
                fake.down = True  # HubSpot goes away during the second page
            if pages == 3:
                fake.down = False
                fake.lose_next = 2  # written, but the answers are lost (504)
            await sender.deliver_many(ids, NOW)
    finally:
        await sender.close()
    assert pages == 3
    mid = await states(sessions)
    assert mid.get("pending", 0) >= 10 and mid.get("failed", 0) == 0

    # The outbox job retries once HubSpot is back (past the search lag of lost notes).
    await deliver(sessions, channel, NOW + timedelta(seconds=5), NOW + SEARCH_LAG * 3)

    assert await states(sessions) == {"sent": 25}
    assert len(fake.objects["contacts"]) == 25
    assert len(fake.objects["deals"]) == 25
    assert len(fake.objects["notes"]) == 25  # one qualification note each, never twice
    for lead_id in lead_ids:
        assert len(fake.by_lead("contacts", lead_id)) == 1
        assert len(fake.by_lead("deals", lead_id)) == 1
    assert fake.statuses(503) >= 1 and fake.statuses(504) == 2


async def test_a_note_whose_answer_was_lost_is_found_by_its_marker_not_created_again(
    sessions: Sessions,
    fake: FakeHubSpot,
    channel: HubSpotChannel,
    clock: Clock,
    subscribed: None,
) -> None:
    lead_id = await new_lead(sessions, 3)
    async with sessions.begin() as session:
        await add_note(session, lead_id, kind="note", author="ana", body="Call back", now=NOW)
    fake.lose_on[NOTES_CREATE] = 1  # the note is created, its answer lost (504)
    fake.hidden_all = True  # and search has not caught up yet

    await deliver(sessions, channel, NOW)
    assert len(fake.objects["notes"]) == 1
    assert await states(sessions) == {"pending": 1}

    # Retried within the search lag: search finds nothing yet, and nothing is created.
    clock.now = NOW + timedelta(seconds=5)
    await deliver(sessions, channel, NOW + timedelta(minutes=1))
    assert len(fake.objects["notes"]) == 1
    assert await states(sessions) == {"pending": 1}

    # Search catches up: the retry finds the note by its marker and records it.
    fake.hidden_all = False
    clock.now = NOW + SEARCH_LAG * 2
    await deliver(sessions, channel, NOW + timedelta(minutes=5))
    assert len(fake.objects["notes"]) == 1
    assert await states(sessions) == {"sent": 1}
    creates = [r for r in fake.requests if r[1] == NOTES_CREATE]
    assert len(creates) == 1


async def test_a_throttled_note_is_created_on_the_next_try_without_a_search(
    sessions: Sessions,
    fake: FakeHubSpot,
    channel: HubSpotChannel,
    clock: Clock,
    subscribed: None,
) -> None:
    lead_id = await new_lead(sessions, 8)
    async with sessions.begin() as session:
        await add_note(session, lead_id, kind="note", author="ana", body="Call back", now=NOW)
    fake.throttle_on[NOTES_CREATE] = 1
    fake.per_interval = 1000  # the 429 is the only limit met

    await deliver(sessions, channel, NOW)
    assert fake.objects["notes"] == {}
    async with sessions() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert (row.state, row.attempts) == ("pending", 0)  # deferred, the try was free

    fake.hidden_all = True  # a search would find nothing: it must not be needed
    clock.now = NOW + timedelta(seconds=11)  # HubSpot's window has passed, not the search lag
    channel.client.limiter = RateLimiter()
    await deliver(sessions, channel, NOW + timedelta(seconds=11))

    assert len(fake.objects["notes"]) == 1
    assert await states(sessions) == {"sent": 1}
    assert not [r for r in fake.requests if r[1].endswith("/notes/search")]


async def test_an_input_hubspot_refuses_fails_only_its_own_lead(
    sessions: Sessions, fake: FakeHubSpot, channel: HubSpotChannel, subscribed: None
) -> None:
    good, bad = await new_lead(sessions, 6), await new_lead(sessions, 7)
    # A contact (another address) already carries the second lead's id: unique, so the
    # batch that would create a second one is refused (409).
    fake._create("contacts", {"email": "old@acme.com", "leadbot_lead_id": str(bad)})

    await deliver(sessions, channel, NOW)

    assert len(fake.by_lead("deals", good)) == 1
    assert fake.by_lead("deals", bad) == []
    async with sessions() as session:
        rows = {r.key: r for r in (await session.scalars(select(OutboxItem))).all()}
    assert rows[f"hubspot:lead:{good}:lead:{good}"].state == "sent"
    refused = rows[f"hubspot:lead:{bad}:lead:{bad}"]
    assert refused.state == "failed" and "Existing ID" in (refused.error or "")


async def test_a_429_defers_the_row_without_spending_a_try(
    sessions: Sessions, fake: FakeHubSpot, channel: HubSpotChannel, subscribed: None
) -> None:
    await new_lead(sessions, 4)
    fake.per_interval, fake.interval_ms = 3, 60_000
    fake.spend(3)  # another integration spent the window

    await deliver(sessions, channel, NOW)

    assert fake.statuses(429) == 1
    async with sessions() as session:
        [row] = (await session.scalars(select(OutboxItem))).all()
    assert row.state == "pending"
    assert row.attempts == 0  # held back: the try was free
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= NOW + timedelta(seconds=60)  # the window HubSpot told us


async def test_an_erased_lead_is_never_pushed(
    sessions: Sessions, fake: FakeHubSpot, channel: HubSpotChannel, subscribed: None
) -> None:
    lead_id = await new_lead(sessions, 5)
    async with sessions.begin() as session:
        await erase_lead(session, lead_id, actor="admin", hash_key=b"k" * 32, now=NOW)
        # A sync asked for after the erasure (a late event) must not push the lead either.
        await enqueue_many(session, [sync_row(lead_id, "late", NOW)])
    async for _ in backfill.pages(sessions, "r2", NOW):  # the backfill skips erased leads
        pytest.fail("an erased lead was backfilled")

    await deliver(sessions, channel, NOW)

    assert fake.objects["contacts"] == {} and fake.objects["deals"] == {}
    assert await states(sessions) == {"failed": 2}  # cancelled by the erasure, refused
    async with sessions() as session:
        late = await session.scalar(select(OutboxItem).where(OutboxItem.key.endswith(":late")))
    assert late is not None and "lead erased" in (late.error or "")
