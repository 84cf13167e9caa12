"""The outbox contract on every backend: stored once, sent at most once, outcomes as rules say."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.delivery.outbox import Dispatcher, MaybeSent, NotSent, Receipt, enqueue
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, Message, OutboxItem

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
            session,
            key=key,
            channel="test",
            recipient="+14155550123",
            payload={"text": "Hi Dana"},
            now=NOW,
            lead_id=lead.id,
        )
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
            .values(state="sending", updated_at=NOW, sending_started_at=NOW)
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


# -- batches (deliver_many) --------------------------------------------------------------


class ByRecipient:
    """A channel whose outcome is chosen by recipient; counts sends and the peak in flight."""

    name = "test"

    def __init__(self, outcomes: Mapping[str, Exception] | None = None) -> None:
        self.outcomes = dict(outcomes or {})
        self.sent: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            self.sent.append(recipient)
            if recipient in self.outcomes:
                raise self.outcomes[recipient]
            return Receipt(external_id=f"ext-{recipient}")
        finally:
            self.in_flight -= 1


async def make_items(sessions: Sessions, count: int) -> list[tuple[int, int, str]]:
    """``count`` leads with one pending row each: (row id, lead id, recipient)."""
    made = []
    async with sessions.begin() as session:
        for n in range(count):
            phone = f"+1415555{n:04d}"
            lead = (await intake(session, LeadIn(phone=phone), default_region="US", now=NOW)).lead
            item_id = await enqueue(
                session,
                key=f"lead:{lead.id}:batch",
                channel="test",
                recipient=phone,
                payload={"text": f"Hi {n}"},
                now=NOW,
                lead_id=lead.id,
            )
            assert item_id is not None
            made.append((item_id, lead.id, phone))
    return made


async def test_a_batch_records_each_outcome_by_the_rules(sessions: Sessions) -> None:
    items = await make_items(sessions, 6)
    (ok, ok_lead, _), (retry, _, r1), (bad, _, r2), (maybe, _, r3), (held, _, r4), (bug, _, r5) = (
        items
    )
    channel = ByRecipient(
        {
            r1: NotSent("503", retry_after=None),
            r2: NotSent("invalid number", is_transient=False),
            r3: MaybeSent("read timeout"),
            r4: NotSent("daily cap", retry_after=600, attempted=False),
            r5: RuntimeError("bug"),
        }
    )
    dispatcher = Dispatcher(sessions, {"test": channel}, backoff=(timedelta(seconds=5),))
    states = await dispatcher.deliver_many([i for i, _, _ in items], NOW)
    assert states == {
        ok: "sent",
        retry: "pending",
        bad: "failed",
        maybe: "uncertain",
        held: "pending",
        bug: "uncertain",
    }
    rows = {i: await state_of(sessions, i) for i, _, _ in items}
    assert (rows[ok].external_id, rows[ok].attempts, rows[ok].error) == (
        f"ext-{items[0][2]}",
        1,
        None,
    )
    assert (rows[retry].attempts, rows[retry].next_attempt_at) == (1, NOW + timedelta(seconds=5))
    assert (rows[held].attempts, rows[held].next_attempt_at) == (0, NOW + timedelta(minutes=10))
    assert all(rows[i].error for i in (retry, bad, maybe, held, bug))
    async with sessions() as session:
        messages = list(await session.scalars(select(Message)))
        touched = list(
            await session.scalars(select(Lead).where(Lead.last_outbound_at.is_not(None)))
        )
    assert [(m.lead_id, m.external_id, m.body) for m in messages] == [
        (ok_lead, f"ext-{items[0][2]}", "Hi 0")
    ]
    assert [lead.id for lead in touched] == [ok_lead]
    # Later batches: final states are never resent, the held-back and retried rows are.
    later = await dispatcher.deliver_many([i for i, _, _ in items], NOW + timedelta(hours=1))
    assert later[retry] == "failed"  # its one retry failed again: attempts ran out
    assert later[held] == "pending"  # still held back, still free
    assert channel.sent.count(r2) == channel.sent.count(r3) == channel.sent.count(r5) == 1
    assert channel.sent.count(items[0][2]) == 1


async def test_racing_dispatchers_send_each_row_once(sessions: Sessions) -> None:
    items = await make_items(sessions, 30)
    ids = [i for i, _, _ in items]
    channel = ByRecipient()
    dispatchers = [Dispatcher(sessions, {"test": channel}) for _ in range(3)]
    results = await asyncio.gather(
        *(
            d.deliver_many(list(reversed(ids)) if n % 2 else ids, NOW, concurrency=4)
            for n, d in enumerate(dispatchers)
        )
    )
    assert sorted(channel.sent) == sorted(r for _, _, r in items)  # each exactly once
    assert all(set(r) == set(ids) for r in results)
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 30
        states = set(await session.scalars(select(OutboxItem.state)))
    assert states == {"sent"}


async def test_a_batch_leaves_rows_that_are_not_due_and_bounds_concurrency(
    sessions: Sessions,
) -> None:
    items = await make_items(sessions, 12)
    later, done = items[0][0], items[1][0]
    async with sessions.begin() as session:
        await session.execute(
            update(OutboxItem)
            .where(OutboxItem.id == later)
            .values(next_attempt_at=NOW + timedelta(minutes=1))
        )
        await session.execute(update(OutboxItem).where(OutboxItem.id == done).values(state="sent"))
    channel = ByRecipient()
    dispatcher = Dispatcher(sessions, {"test": channel})
    states = await dispatcher.deliver_many(
        [i for i, _, _ in items] + [999_999], NOW, concurrency=3
    )
    assert states[later] == "pending" and states[done] == "sent" and states[999_999] == "missing"
    assert len(channel.sent) == 10 and items[0][2] not in channel.sent
    assert channel.peak == 3
    assert (await state_of(sessions, later)).attempts == 0


class Batching:
    """A channel with ``send_batch``: the dispatcher hands it the whole batch at once."""

    name = "test"

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        raise AssertionError("the batch method should be used")

    async def send_batch(
        self, items: list[tuple[str, Mapping[str, Any]]], *, concurrency: int
    ) -> list[Receipt | BaseException]:
        self.batches.append([r for r, _ in items])
        if self.fail:
            raise RuntimeError("lost track midway")
        return [
            Receipt(external_id=r) if n % 2 == 0 else NotSent("no")
            for n, (r, _) in enumerate(items)
        ]


async def test_a_batch_channel_gets_one_call_and_a_crash_makes_all_uncertain(
    sessions: Sessions,
) -> None:
    items = await make_items(sessions, 4)
    channel = Batching()
    states = await Dispatcher(sessions, {"test": channel}).deliver_many(
        [i for i, _, _ in items], NOW
    )
    assert channel.batches == [[r for _, _, r in items]]
    assert [states[i] for i, _, _ in items] == ["sent", "pending", "sent", "pending"]
    crashing = Batching(fail=True)
    again = await Dispatcher(sessions, {"test": crashing}).deliver_many(
        [i for i, _, _ in items], NOW + timedelta(hours=1)
    )
    assert [again[i] for i, _, _ in items] == ["sent", "uncertain", "sent", "uncertain"]
