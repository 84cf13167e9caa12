"""The outbox contract on every backend: stored once, sent at most once, outcomes as rules say."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.leads import LeadIn, intake
from scheduler.models import Lead, Message, OutboxItem
from scheduler.outbox import Dispatcher, MaybeSent, NotSent, Receipt, enqueue

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


class ScriptedChannel:
    """A channel whose next outcomes are scripted; records every send."""

    name = "test"

    def __init__(self, *outcomes: Exception | str) -> None:
        self.outcomes = list(outcomes)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        self.sent.append((recipient, dict(payload)))
        await asyncio.sleep(0)  # let racing deliveries interleave
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, Exception):
            raise outcome
        return Receipt(external_id=f"ext-{len(self.sent)}")


async def make_item(sessions: Sessions, key: str = "lead:1:hello") -> tuple[int, int]:
    async with sessions.begin() as session:
        lead = (
            await intake(session, LeadIn(phone="+14155550123"), default_region="US", now=NOW)
        ).lead
        item_id = await enqueue(
            session, key=key, channel="test", recipient="+14155550123",
            payload={"text": "Hi Dana"}, now=NOW, lead_id=lead.id,
        )  # fmt: skip
    assert item_id is not None
    return item_id, lead.id


async def state_of(sessions: Sessions, item_id: int) -> OutboxItem:
    async with sessions() as session:
        item = await session.get(OutboxItem, item_id)
    assert item is not None
    return item


async def test_an_intent_is_stored_once(sessions: Sessions) -> None:
    item_id, lead_id = await make_item(sessions)
    async with sessions.begin() as session:
        again = await enqueue(
            session, key="lead:1:hello", channel="test", recipient="x", payload={}, now=NOW
        )
        count = await session.scalar(select(func.count()).select_from(OutboxItem))
    assert again is None
    assert count == 1


async def test_sent_records_provider_id_and_history(sessions: Sessions) -> None:
    item_id, lead_id = await make_item(sessions)
    channel = ScriptedChannel("ok")
    assert await Dispatcher(sessions, {"test": channel}).deliver(item_id, NOW) == "sent"
    item = await state_of(sessions, item_id)
    assert (item.state, item.external_id, item.attempts) == ("sent", "ext-1", 1)
    async with sessions() as session:
        message = await session.scalar(select(Message).where(Message.lead_id == lead_id))
        lead = await session.get(Lead, lead_id)
    assert message is not None and (message.direction, message.body) == ("out", "Hi Dana")
    assert lead is not None and lead.last_outbound_at == NOW
    # Delivering a sent row again sends nothing.
    assert await Dispatcher(sessions, {"test": channel}).deliver(item_id, NOW) == "sent"
    assert len(channel.sent) == 1


async def test_transient_failure_is_retried_after_backoff(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel(NotSent("429 throttled", code="130429", retry_after=60), "ok")
    dispatcher = Dispatcher(sessions, {"test": channel})
    assert await dispatcher.deliver(item_id, NOW) == "pending"
    item = await state_of(sessions, item_id)
    assert item.next_attempt_at == NOW + timedelta(seconds=60)
    assert await dispatcher.deliver_due(NOW + timedelta(seconds=59)) == 0
    assert await dispatcher.deliver(item_id, NOW + timedelta(seconds=30)) == "pending"
    assert len(channel.sent) == 1
    assert await dispatcher.deliver_due(NOW + timedelta(seconds=61)) == 1
    assert (await state_of(sessions, item_id)).state == "sent"
    assert len(channel.sent) == 2


async def test_attempts_run_out(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel(*[NotSent("503") for _ in range(10)])
    dispatcher = Dispatcher(sessions, {"test": channel}, backoff=(timedelta(0), timedelta(0)))
    states = [await dispatcher.deliver(item_id, NOW) for _ in range(5)]
    assert states == ["pending", "pending", "failed", "failed", "failed"]
    assert len(channel.sent) == 3


@pytest.mark.parametrize(
    ("error", "state"),
    [
        (NotSent("recipient invalid", is_transient=False), "failed"),
        (MaybeSent("read timeout"), "uncertain"),
        (RuntimeError("bug in channel"), "uncertain"),
    ],
)
async def test_final_outcomes_are_never_resent(
    sessions: Sessions, error: Exception, state: str
) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel(error)
    dispatcher = Dispatcher(sessions, {"test": channel}, backoff=(timedelta(0),))
    assert await dispatcher.deliver(item_id, NOW) == state
    assert await dispatcher.deliver(item_id, NOW + timedelta(hours=1)) == state
    assert await dispatcher.deliver_due(NOW + timedelta(days=1)) == 0
    assert len(channel.sent) == 1
    assert (await state_of(sessions, item_id)).error


async def test_racing_deliveries_send_once(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    channel = ScriptedChannel()
    dispatcher = Dispatcher(sessions, {"test": channel})
    states = await asyncio.gather(*(dispatcher.deliver(item_id, NOW) for _ in range(10)))
    assert len(channel.sent) == 1
    assert "sent" in states


async def test_unknown_channel_fails(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    assert await Dispatcher(sessions, {}).deliver(item_id, NOW) == "failed"


async def test_interrupted_sends_become_uncertain(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == item_id)
            .values(state="sending", updated_at=NOW)
        )
    dispatcher = Dispatcher(sessions, {"test": ScriptedChannel()})
    assert await dispatcher.reap(NOW + timedelta(minutes=4)) == 0
    assert await dispatcher.reap(NOW + timedelta(minutes=6)) == 1
    assert (await state_of(sessions, item_id)).state == "uncertain"


async def test_held_back_sends_are_deferred_without_using_up_attempts(sessions: Sessions) -> None:
    item_id, _ = await make_item(sessions)
    cap = NotSent("daily cap reached", code="daily_cap", retry_after=3600, attempted=False)
    channel = ScriptedChannel(*[cap] * 10, "ok")
    dispatcher = Dispatcher(sessions, {"test": channel}, backoff=(timedelta(0),))
    now = NOW
    for _ in range(10):
        assert await dispatcher.deliver(item_id, now) == "pending"
        item = await state_of(sessions, item_id)
        assert (item.attempts, item.next_attempt_at) == (0, now + timedelta(hours=1))
        now += timedelta(hours=1)
    assert await dispatcher.deliver(item_id, now) == "sent"
