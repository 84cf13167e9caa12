"""The ad loop end to end in the pipeline: a lead from a Click-to-WhatsApp ad that qualifies,
books and is won is reported to a local Meta Conversions API (checking requests as Meta
does) once per kind, through the outbox, stored with the change; nothing for other leads,
rolled-back changes, late events or erased leads; retries on 5xx/429, a 400 is final and
says why. SQLite and Postgres."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.calendly.bookings import BookingContext, apply_event
from crm_sync.conversions import (
    CHANNEL,
    ConversionsConfig,
    ConversionsConfigError,
    ConversionsSubscriber,
)
from crm_sync.conversions_channel import ConversionsChannel
from scheduler.delivery.channels import NotSent
from scheduler.delivery.outbox import Dispatcher
from scheduler.pipeline import outbound_events
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.erasure import erase_lead
from scheduler.store.models import Lead, OutboxItem, Stage
from tests.support.fakes.calendly import load_event
from tests.support.fakes.meta_capi import MetaCapi, running

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 5, 4, 11, 42, 33, tzinfo=UTC)
CLICKED = NOW - timedelta(hours=2)
CLID = "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM"
WABA = "102290129340398"
BACKOFF = (timedelta(seconds=2), timedelta(seconds=5))  # three tries, then failed


@pytest.fixture
async def meta() -> AsyncIterator[MetaCapi]:
    async with running(MetaCapi()) as fake:
        yield fake


@pytest.fixture
def config(meta: MetaCapi) -> Iterator[ConversionsConfig]:
    """The Conversions API pointed at the fake, subscribed to the pipeline's events."""
    found = ConversionsConfig(
        dataset_id=meta.dataset_id, waba_id=WABA, token=meta.token, api_url=meta.base_url
    )
    outbound_events.subscribe([ConversionsSubscriber(found)])
    yield found
    outbound_events.subscribe(())  # process-wide: never left to the next test


async def deliver(sessions: Sessions, config: ConversionsConfig, *at: datetime) -> None:
    """Run the outbox job at each of ``at``."""
    channel = ConversionsChannel(config, timeout=5)
    sender = Dispatcher(sessions, {CHANNEL: channel}, backoff=BACKOFF)
    try:
        for now in at:
            await sender.deliver_due(now)
    finally:
        await sender.close()
        await channel.aclose()


async def new_lead(sessions: Sessions, n: int = 1, **attribution: str) -> Lead:
    data = LeadIn(name="Dana", phone=f"+1415555{n:04d}", source="ctwa_ad", attribution=attribution)
    async with sessions.begin() as session:
        return (await intake(session, data, default_region="US", now=CLICKED)).lead


def ad_lead(sessions: Sessions, n: int = 1, clicked: datetime = CLICKED) -> Any:
    return new_lead(
        sessions, n, channel="whatsapp", ctwa_clid=CLID, ctwa_clicked_at=clicked.isoformat()
    )


async def move(sessions: Sessions, lead_id: int, *stages: Stage, at: datetime = NOW) -> None:
    for to in stages:
        async with sessions.begin() as session:
            await transition(session, lead_id, to, reason="test", actor="rep:ana", now=at)


async def calendly(sessions: Sessions, name: str, token: str, at: datetime = NOW) -> None:
    async with sessions.begin() as session:
        await apply_event(session, load_event(name, token=token), now=at, ctx=BookingContext())


async def capi_rows(sessions: Sessions) -> list[OutboxItem]:
    async with sessions() as session:
        query = select(OutboxItem).where(OutboxItem.channel == CHANNEL).order_by(OutboxItem.id)
        return list(await session.scalars(query))


async def test_qualified_booked_and_won_are_three_conversions_sent_once(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)
    await calendly(sessions, "invitee_created", lead.token, at=NOW + timedelta(hours=1))
    await move(sessions, lead.id, Stage.PROPOSAL_SENT, at=NOW + timedelta(days=1))
    await move(sessions, lead.id, Stage.WON, at=NOW + timedelta(days=3))
    await deliver(sessions, config, NOW + timedelta(days=3))

    assert [r.path for r in meta.requests] == [f"/v25.0/{meta.dataset_id}/events"] * 3
    assert all(r.status == 200 and r.token == meta.token for r in meta.requests)
    by_name = {e["event_name"]: e for e in meta.events}  # sent concurrently: any order
    assert len(meta.events) == 3
    qualified, booked, won = (
        by_name[n] for n in ("LeadSubmitted", "InitiateCheckout", "Purchase")
    )
    assert qualified == {
        "event_name": "LeadSubmitted",
        "event_time": int(NOW.timestamp()),
        "event_id": qualified["event_id"],
        "action_source": "business_messaging",
        "messaging_channel": "whatsapp",
        "user_data": {"whatsapp_business_account_id": WABA, "ctwa_clid": CLID},
    }
    assert booked["event_time"] == int((NOW + timedelta(hours=1)).timestamp())
    assert won["event_time"] == int((NOW + timedelta(days=3)).timestamp())
    assert booked["user_data"] == won["user_data"] == qualified["user_data"]
    assert len({e["event_id"] for e in meta.events}) == 3
    keys = [r.key for r in await capi_rows(sessions)]
    assert keys == [
        f"capi:lead:{lead.id}:{n}" for n in ("LeadSubmitted", "InitiateCheckout", "Purchase")
    ]


async def test_reaching_a_milestone_again_sends_nothing_twice(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)
    await calendly(sessions, "invitee_created", lead.token)
    await deliver(sessions, config, NOW)
    first = [dict(e) for e in meta.events]
    # Qualified again by another path (dormant, then back), and the call rescheduled.
    later = NOW + timedelta(days=1)
    await move(sessions, lead.id, Stage.DORMANT, Stage.CONTACTED, Stage.QUALIFIED, at=later)
    await calendly(sessions, "reschedule_created", lead.token, at=later)
    await deliver(sessions, config, later, later + timedelta(minutes=5))

    assert sorted(e["event_name"] for e in first) == ["InitiateCheckout", "LeadSubmitted"]
    assert meta.events == first  # nothing more arrived
    assert len(meta.requests) == 2
    assert [r.state for r in await capi_rows(sessions)] == ["sent", "sent"]


async def test_leads_without_an_ad_click_send_nothing(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    plain = await new_lead(sessions, 1, channel="whatsapp", ad_source_id="120210000000000")
    empty = await new_lead(sessions, 2, ctwa_clid="   ")
    for lead in (plain, empty):
        await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)
        await move(sessions, lead.id, Stage.PROPOSAL_SENT, Stage.WON)
    await deliver(sessions, config, NOW)

    assert await capi_rows(sessions) == [] and meta.requests == []


async def test_a_change_that_rolled_back_stores_no_conversion(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED)
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            await transition(session, lead.id, Stage.QUALIFIED, reason=None, actor="x", now=NOW)
            assert len(await capi_rows_in(session)) == 1  # stored with the move...
            raise RuntimeError("the caller failed after the move")
    assert await capi_rows(sessions) == []  # ...and gone with it
    await deliver(sessions, config, NOW)
    assert meta.requests == []


async def capi_rows_in(session: AsyncSession) -> list[OutboxItem]:
    return list(await session.scalars(select(OutboxItem).where(OutboxItem.channel == CHANNEL)))


async def test_events_after_the_attribution_window_are_not_sent(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    lead = await ad_lead(sessions, clicked=NOW - timedelta(days=6))
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)  # day 6: credited
    await move(sessions, lead.id, Stage.PROPOSAL_SENT, Stage.WON, at=NOW + timedelta(days=2))
    await deliver(sessions, config, NOW + timedelta(days=2))

    assert [e["event_name"] for e in meta.events] == ["LeadSubmitted"]


async def test_5xx_and_429_are_retried_and_the_event_arrives_once(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    meta.script = [(503, {}), (429, {"Retry-After": "30"})]
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)

    await deliver(sessions, config, NOW, NOW + timedelta(seconds=3))
    assert [r.status for r in meta.requests] == [503, 429]
    await deliver(sessions, config, NOW + timedelta(seconds=10))  # Retry-After: not yet
    assert len(meta.requests) == 2
    await deliver(sessions, config, NOW + timedelta(seconds=40))

    assert [r.status for r in meta.requests] == [503, 429, 200]
    assert meta.requests[0].body == meta.requests[2].body  # the same event each time
    [event] = meta.events
    assert event["event_name"] == "LeadSubmitted"
    [row] = await capi_rows(sessions)
    assert (row.state, row.attempts) == ("sent", 3)


async def test_a_400_is_final_and_says_why(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    meta.token = "another-token"  # Meta no longer takes ours
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)
    await deliver(sessions, config, NOW, NOW + timedelta(minutes=10))

    assert [r.status for r in meta.requests] == [400]  # never tried again
    [row] = await capi_rows(sessions)
    assert row.state == "failed" and row.error is not None
    assert "HTTP 400" in row.error and "Invalid OAuth access token" in row.error
    assert "code 190" in row.error and "fbtrace_id" in row.error


async def test_no_answer_is_uncertain_and_never_resent_blindly(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    meta.stall = True  # Meta reads the request and never answers
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)
    channel = ConversionsChannel(config, timeout=0.5)
    sender = Dispatcher(sessions, {CHANNEL: channel}, backoff=BACKOFF)
    try:
        await sender.deliver_due(NOW)
        await sender.deliver_due(NOW + timedelta(minutes=10))
    finally:
        await sender.close()
        await channel.aclose()

    assert len(meta.requests) == 1
    [row] = await capi_rows(sessions)
    assert row.state == "uncertain" and row.error is not None
    assert "resent safely" in row.error


async def test_metas_error_body_names_the_missing_field(
    meta: MetaCapi, config: ConversionsConfig
) -> None:
    """A row built by hand without the WABA id: Meta's 400 body is read into the error."""
    channel = ConversionsChannel(config)
    event = {
        "event_name": "AddToCart",
        "event_time": int(NOW.timestamp()),
        "event_id": "x1",
        "action_source": "business_messaging",
        "messaging_channel": "whatsapp",
        "user_data": {"ctwa_clid": CLID},  # no WABA id: Meta names the missing field
    }
    try:
        with pytest.raises(NotSent) as refused:
            await channel.send(meta.dataset_id, {"event": event})
    finally:
        await channel.aclose()
    assert "user_data.whatsapp_business_account_id" in str(refused.value)
    assert refused.value.is_transient is False and "code 100" in str(refused.value)


async def test_erasure_cancels_pending_conversions(
    sessions: Sessions, meta: MetaCapi, config: ConversionsConfig
) -> None:
    lead = await ad_lead(sessions)
    await move(sessions, lead.id, Stage.CONTACTED, Stage.QUALIFIED)
    async with sessions.begin() as session:
        await erase_lead(session, lead.id, actor="admin", hash_key=b"k" * 32, now=NOW)
    await deliver(sessions, config, NOW)
    # After erasure the lead has no click any more: later milestones store nothing.
    await move(sessions, lead.id, Stage.PROPOSAL_SENT, Stage.WON)

    assert meta.requests == []
    [row] = await capi_rows(sessions)
    assert (row.key, row.state, row.payload) == (
        f"capi:lead:{lead.id}:LeadSubmitted",
        "failed",
        {},
    )


def test_config_names_what_is_wrong() -> None:
    good = {"dataset_id": "123", "waba_id": "456", "token": "t"}
    assert ConversionsConfig(**good).events_url == "https://graph.facebook.com/v25.0/123/events"
    bad = [
        ({"dataset_id": "my-pixel"}, "LEADBOT_META_DATASET_ID"),
        ({"waba_id": ""}, "LEADBOT_WHATSAPP_WABA_ID"),
        ({"token": ""}, "LEADBOT_META_CAPI_TOKEN"),
        ({"api_url": "graph.facebook.com"}, "LEADBOT_META_CAPI_URL"),
        ({"api_version": "25"}, "LEADBOT_META_CAPI_VERSION"),
    ]
    for change, named in bad:
        with pytest.raises(ConversionsConfigError, match=named):
            ConversionsConfig(**(good | change))
