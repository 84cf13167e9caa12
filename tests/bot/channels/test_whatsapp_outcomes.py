"""The WhatsApp channel's outcomes driven through the outbox dispatcher, on every backend:
what is retried, what fails, what is uncertain, the 24-hour window, and that nothing is
ever sent twice."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.throttle import Pause
from bot.channels.whatsapp import LeadServiceWindow, WhatsAppChannel
from bot.whatsapp.payloads import window_until
from scheduler.delivery.outbox import DEFAULT_BACKOFF, Dispatcher, enqueue
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, OutboxItem
from tests.support.fakes.graph_api import FakeGraphAPI, Reply

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PHONE = "+14155550123"
Sessions = async_sessionmaker[AsyncSession]
QUESTION = {
    "kind": "buttons",
    "text": "How big is your team?",
    "buttons": [{"id": "size:small", "title": "1-10"}, {"id": "size:big", "title": "11+"}],
}


def make_channel(graph: FakeGraphAPI, sessions: Sessions, **options: Any) -> WhatsAppChannel:
    values: dict[str, Any] = {
        "phone_id": graph.phone_id,
        "token": graph.token,
        "api_url": graph.base_url,
        "template": "lead_followup",
        "window": LeadServiceWindow(sessions),
        "clock": lambda: NOW,
        "timeout": 2.0,
    }
    values.update(options)
    return WhatsAppChannel(**values)


@pytest.fixture
async def channel(graph_api: FakeGraphAPI, sessions: Sessions) -> AsyncIterator[WhatsAppChannel]:
    channel = make_channel(graph_api, sessions)
    yield channel
    await channel.aclose()


async def enqueue_for_lead(
    sessions: Sessions,
    payload: dict[str, Any] = QUESTION,
    *,
    last_inbound: timedelta | None = timedelta(minutes=1),
) -> tuple[int, int]:
    """A lead who last wrote ``last_inbound`` ago and one outbox row to them."""
    async with sessions.begin() as session:
        lead = (await intake(session, LeadIn(phone=PHONE), default_region="US", now=NOW)).lead
        if last_inbound is not None:
            lead.last_inbound_at = NOW - last_inbound
        item_id = await enqueue(
            session,
            key=f"wa:test:{lead.id}",
            channel="whatsapp",
            recipient=PHONE,
            payload=payload,
            now=NOW,
            lead_id=lead.id,
        )
    assert item_id is not None
    return item_id, lead.id


async def row(sessions: Sessions, item_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, item_id)
    assert item is not None
    return item


async def deliver_until_done(dispatcher: Dispatcher, item_id: int, sessions: Sessions) -> str:
    """Deliver, then keep delivering whatever is due over the next hour (retries)."""
    state = await dispatcher.deliver(item_id, NOW)
    for minutes in range(1, 61):
        await dispatcher.deliver_due(NOW + timedelta(minutes=minutes))
    return (await row(sessions, item_id)).state if state else state


async def test_an_accepted_message_is_sent_with_its_wamid(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    item_id, _ = await enqueue_for_lead(sessions)

    assert await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW) == "sent"

    item = await row(sessions, item_id)
    assert item.external_id == graph_api.requests[0].wamid
    assert graph_api.sent_to("14155550123")[0]["interactive"]["type"] == "button"


@pytest.mark.parametrize(
    "failure",
    [
        Reply.server_error(with_body=True),
        Reply.rate_limited(),
        Reply.rate_limited(status=429),
        Reply.graph_error(80007),
        Reply.graph_error(131056),
    ],
    ids=["500 with error body", "130429", "429", "80007", "131056 pair limit"],
)
async def test_failures_that_surely_did_not_send_are_retried_and_sent_once(
    graph_api: FakeGraphAPI, sessions: Sessions, failure: Reply
) -> None:
    # No channel pause here (the pause test covers it): only the outbox's own retry timing.
    channel = make_channel(graph_api, sessions, pause=Pause(initial=0, maximum=0))
    graph_api.script(failure)
    item_id, _ = await enqueue_for_lead(sessions)
    dispatcher = Dispatcher(sessions, {"whatsapp": channel})

    assert await dispatcher.deliver(item_id, NOW) == "pending"
    item = await row(sessions, item_id)
    assert item.next_attempt_at is not None and item.next_attempt_at >= NOW + DEFAULT_BACKOFF[0]
    assert await deliver_until_done(dispatcher, item_id, sessions) == "sent"

    await channel.aclose()
    assert len(graph_api.requests) == 2
    assert len(graph_api.messages) == 1


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (Reply.undeliverable(), "131026"),
        (Reply.graph_error(100, message="Invalid parameter"), "100"),
    ],
    ids=["131026 undeliverable", "100 invalid parameter"],
)
async def test_permanent_graph_errors_fail_without_retry(
    channel: WhatsAppChannel,
    graph_api: FakeGraphAPI,
    sessions: Sessions,
    failure: Reply,
    code: str,
) -> None:
    graph_api.script(failure)
    item_id, _ = await enqueue_for_lead(sessions)

    assert (
        await deliver_until_done(Dispatcher(sessions, {"whatsapp": channel}), item_id, sessions)
        == "failed"
    )

    assert len(graph_api.requests) == 1
    assert code in (await row(sessions, item_id)).error  # type: ignore[operator]


@pytest.mark.parametrize(
    "failure",
    [
        Reply.server_error(with_body=False),
        Reply.server_error(with_body=False, status=502),
        Reply.dropped(),
        Reply.slow(30),
    ],
    ids=["500 without body", "502 without body", "connection dropped", "timeout"],
)
async def test_an_unknown_outcome_is_uncertain_and_never_resent(
    graph_api: FakeGraphAPI, sessions: Sessions, failure: Reply
) -> None:
    channel = make_channel(graph_api, sessions, timeout=0.3)
    graph_api.script(failure)
    item_id, _ = await enqueue_for_lead(sessions)
    try:
        state = await deliver_until_done(
            Dispatcher(sessions, {"whatsapp": channel}), item_id, sessions
        )
    finally:
        await channel.aclose()

    assert state == "uncertain"
    assert len(graph_api.requests) == 1


async def test_connection_refused_is_retried(sessions: Sessions) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    graph = FakeGraphAPI(base_url=f"http://127.0.0.1:{port}")
    channel = make_channel(graph, sessions)
    item_id, _ = await enqueue_for_lead(sessions)
    try:
        state = await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW)
    finally:
        await channel.aclose()

    assert state == "pending"
    assert "cannot reach" in (await row(sessions, item_id)).error  # type: ignore[operator]


async def test_throttling_pauses_the_whole_channel(
    graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    frozen = Pause(clock=lambda: 100.0)  # monotonic time stands still: the pause lasts
    channel = make_channel(graph_api, sessions, pause=frozen)
    graph_api.script(Reply.rate_limited())
    first, _ = await enqueue_for_lead(sessions)
    async with sessions.begin() as session:
        second = await enqueue(
            session,
            key="other",
            channel="whatsapp",
            recipient="+14155550999",
            payload={"kind": "template", "text": "t", "template": "x", "language": "en_US"},
            now=NOW,
        )
    assert second is not None
    dispatcher = Dispatcher(sessions, {"whatsapp": channel})

    assert await dispatcher.deliver(first, NOW) == "pending"
    assert await dispatcher.deliver(second, NOW) == "pending"
    await channel.aclose()

    assert frozen.remaining() == 1.0
    assert len(graph_api.requests) == 1  # the second never reached the Graph API
    assert (await row(sessions, second)).error == "whatsapp sending is paused after throttling"


async def test_outside_the_window_a_free_form_message_goes_as_the_template(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    item_id, _ = await enqueue_for_lead(sessions, last_inbound=timedelta(hours=25))

    assert await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW) == "sent"

    [request] = graph_api.requests
    assert request.body["type"] == "template"
    assert request.body["template"] == {"name": "lead_followup", "language": {"code": "en_US"}}


async def test_a_lead_who_never_wrote_gets_the_template(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    item_id, _ = await enqueue_for_lead(sessions, last_inbound=None)

    await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW)

    assert [r.body["type"] for r in graph_api.requests] == ["template"]


async def test_inside_the_window_free_form_goes_as_is(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    item_id, _ = await enqueue_for_lead(sessions, last_inbound=timedelta(hours=23, minutes=59))

    await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW)

    assert [r.body["type"] for r in graph_api.requests] == ["interactive"]


class NoLookup:
    """A :class:`ServiceWindow` that fails the test if the channel asks it anything."""

    async def is_open(self, recipient: str, now: datetime) -> bool:
        raise AssertionError("the payload carried the window; no lookup expected")

    async def closed(self, recipient: str, now: datetime) -> None:
        return None


@pytest.mark.parametrize(
    ("until", "sent_as"),
    [
        (NOW + timedelta(minutes=1), "interactive"),
        (NOW, "template"),
        (NOW - timedelta(hours=1), "template"),
    ],
    ids=["open", "closing now", "closed"],
)
async def test_the_window_carried_in_the_payload_decides_without_a_lookup(
    graph_api: FakeGraphAPI, sessions: Sessions, until: datetime, sent_as: str
) -> None:
    channel = make_channel(graph_api, sessions, window=NoLookup())
    # The lead row says nothing (never wrote): only the payload's window counts.
    payload = {**QUESTION, "window_until": window_until(until - timedelta(hours=24))}
    item_id, _ = await enqueue_for_lead(sessions, payload, last_inbound=None)
    try:
        assert await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW) == "sent"
    finally:
        await channel.aclose()

    assert [r.body["type"] for r in graph_api.requests] == [sent_as]


async def test_an_unreadable_carried_window_falls_back_to_the_lead_row(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    payload = {**QUESTION, "window_until": "tomorrow-ish"}
    item_id, _ = await enqueue_for_lead(sessions, payload, last_inbound=timedelta(hours=30))

    await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW)

    assert [r.body["type"] for r in graph_api.requests] == ["template"]


async def test_outside_the_window_without_a_template_fails_without_a_request(
    graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    channel = make_channel(graph_api, sessions, template="")
    item_id, _ = await enqueue_for_lead(sessions, last_inbound=timedelta(days=3))
    try:
        state = await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW)
    finally:
        await channel.aclose()

    assert state == "failed"
    assert graph_api.requests == []


async def test_131047_is_recorded_and_the_template_sent_instead(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, sessions: Sessions
) -> None:
    graph_api.script(Reply.window_closed())
    item_id, lead_id = await enqueue_for_lead(sessions, last_inbound=timedelta(hours=2))

    assert await Dispatcher(sessions, {"whatsapp": channel}).deliver(item_id, NOW) == "sent"

    assert [r.body["type"] for r in graph_api.requests] == ["interactive", "template"]
    assert (await row(sessions, item_id)).external_id == graph_api.requests[1].wamid
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
    assert lead is not None and lead.whatsapp_window_closed_at == NOW
    # Until they write again, free-form messages go straight to the template.
    assert not await LeadServiceWindow(sessions).is_open(PHONE, NOW)
    async with sessions.begin() as session:
        await session.execute(
            update(Lead).where(Lead.id == lead_id).values(last_inbound_at=NOW + timedelta(1))
        )
    assert await LeadServiceWindow(sessions).is_open(PHONE, NOW + timedelta(days=1, hours=1))
