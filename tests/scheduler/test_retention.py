"""Retention on every backend: old dedupe records go, in short batches; unprocessed rows,
recent ones and everything a vendor may still re-deliver stay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import greenlet_spawn

from scheduler.store.inbox import Received, append
from scheduler.store.models import InboxItem, OutboxItem, ProcessedEvent, Touch
from scheduler.store.outbox import enqueue
from scheduler.store.retention import MIN_RETENTION_DAYS, RetentionPolicy, trim
from tests.scheduler.cadence_support import make_lead

NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)
Sessions = async_sessionmaker[AsyncSession]


async def _inbox(
    sessions: Sessions, wamid: str, *, age: timedelta, processed: bool, error: str | None = None
) -> None:
    at = NOW - age
    async with sessions.begin() as session:
        await session.execute(
            insert(InboxItem).values(
                channel="whatsapp",
                external_id=wamid,
                sender="+14155550100",
                payload={"text": "hello from Dana"},
                received_at=at,
                attempts=1,
                processed_at=at + timedelta(seconds=1) if processed else None,
                error=error,
            )
        )


async def _event(sessions: Sessions, key: str, *, age: timedelta) -> None:
    async with sessions.begin() as session:
        await session.execute(
            insert(ProcessedEvent).values(source="calendly", key=key, created_at=NOW - age)
        )


async def _outbox(
    sessions: Sessions, key: str, *, state: str, age: timedelta, updated: timedelta | None = None
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            insert(OutboxItem).values(
                key=key,
                channel="whatsapp",
                recipient="+14155550100",
                payload={"text": "Hi Dana"},
                state=state,
                attempts=1,
                created_at=NOW - age,
                updated_at=NOW - (updated if updated is not None else age),
            )
        )


async def _inbox_ids(sessions: Sessions) -> set[str]:
    async with sessions() as session:
        return set(await session.scalars(select(InboxItem.external_id)))


async def test_old_processed_records_are_trimmed_and_unprocessed_ones_never(
    sessions: Sessions,
) -> None:
    await _inbox(sessions, "wamid.old-done", age=100 * DAY, processed=True)
    await _inbox(sessions, "wamid.old-given-up", age=95 * DAY, processed=True, error="x")
    await _inbox(sessions, "wamid.old-unprocessed", age=120 * DAY, processed=False)
    await _inbox(sessions, "wamid.recent-done", age=3 * DAY, processed=True)
    await _inbox(sessions, "wamid.recent-unprocessed", age=1 * DAY, processed=False)
    await _event(sessions, "evt-old", age=91 * DAY)
    await _event(sessions, "evt-recent", age=89 * DAY)
    await _outbox(sessions, "old-sent", state="sent", age=100 * DAY)
    await _outbox(sessions, "old-failed", state="failed", age=100 * DAY)
    await _outbox(sessions, "old-uncertain", state="uncertain", age=100 * DAY)
    await _outbox(sessions, "old-pending", state="pending", age=100 * DAY)
    await _outbox(sessions, "old-but-just-sent", state="sent", age=100 * DAY, updated=DAY)
    await _outbox(sessions, "recent-sent", state="sent", age=2 * DAY)

    report = await trim(sessions, RetentionPolicy(days=90, batch=2), NOW)

    assert (report.inbox_deleted, report.events_deleted, report.outbox_payloads_cleared) == (
        2,
        1,
        2,
    )
    assert await _inbox_ids(sessions) == {
        "wamid.old-unprocessed",
        "wamid.recent-done",
        "wamid.recent-unprocessed",
    }
    async with sessions() as session:
        assert set(await session.scalars(select(ProcessedEvent.key))) == {"evt-recent"}
        outbox = {row.key: row for row in await session.scalars(select(OutboxItem))}
    trimmed = {key for key, row in outbox.items() if row.payload == {}}
    assert trimmed == {"old-sent", "old-failed"}
    # Keys, states and timestamps stay: the key keeps the intent at most once, and the email
    # caps count sent rows by ``updated_at``.
    assert outbox["old-sent"].state == "sent"
    assert outbox["old-sent"].updated_at == NOW - 100 * DAY

    again = await trim(sessions, RetentionPolicy(days=90, batch=2), NOW)
    assert (again.inbox_deleted, again.events_deleted, again.outbox_payloads_cleared) == (0, 0, 0)


async def test_a_redelivery_inside_metas_retry_window_is_still_deduped(
    engine: AsyncEngine, sessions: Sessions
) -> None:
    # At the shortest retention allowed, a wamid first received 7 days ago (Meta's last retry)
    # is still there to recognise the retry; one from before the retention is gone.
    policy = RetentionPolicy(days=MIN_RETENTION_DAYS)
    await _inbox(sessions, "wamid.week", age=7 * DAY, processed=True)
    await _inbox(sessions, "wamid.gone", age=(MIN_RETENTION_DAYS + 1) * DAY, processed=True)

    await trim(sessions, policy, NOW)

    assert await _inbox_ids(sessions) == {"wamid.week"}
    new = await greenlet_spawn(
        append, engine.sync_engine, "whatsapp", [Received("wamid.week", "+14155550100", {})], NOW
    )
    assert new == set()  # the re-delivery is recognised: no second row, no second turn
    assert await _inbox_ids(sessions) == {"wamid.week"}


def test_a_retention_shorter_than_the_vendor_retry_windows_is_refused() -> None:
    assert MIN_RETENTION_DAYS == 8  # Meta retries for up to 7 days, plus a day
    with pytest.raises(ValueError, match="shorter than the 8 days"):
        RetentionPolicy(days=7)
    assert RetentionPolicy().days == 90


async def test_a_backlog_is_trimmed_in_statements_of_a_thousand_rows(
    engine: AsyncEngine, sessions: Sessions
) -> None:
    old = NOW - 200 * DAY
    rows = [
        {
            "channel": "whatsapp",
            "external_id": f"wamid.{i}",
            "sender": "+1",
            "payload": {},
            "received_at": old,
            "processed_at": old,
            "attempts": 1,
        }
        for i in range(2500)
    ]
    async with sessions.begin() as session:
        await session.execute(insert(InboxItem), rows)
    await _inbox(sessions, "wamid.fresh", age=DAY, processed=True)

    with _statements(engine) as seen:
        report = await trim(sessions, RetentionPolicy(), NOW)

    assert report.inbox_deleted == 2500
    deletes = [s for s in seen if s.startswith("DELETE FROM inbox")]
    assert len(deletes) == 3  # 1000 + 1000 + 500, each in a transaction of its own
    assert max(s.count("?") + s.count("$") for s in deletes) <= 1000 + 5
    assert await _inbox_ids(sessions) == {"wamid.fresh"}


async def test_rows_another_transaction_holds_are_skipped_not_waited_for(
    engine: AsyncEngine, sessions: Sessions
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL (SQLite has one writer at a time)")
    await _inbox(sessions, "wamid.held", age=100 * DAY, processed=True)
    await _inbox(sessions, "wamid.free", age=100 * DAY, processed=True)
    async with sessions.begin() as holder:
        await holder.execute(
            select(InboxItem.id).where(InboxItem.external_id == "wamid.held").with_for_update()
        )
        report = await asyncio.wait_for(trim(sessions, RetentionPolicy(), NOW), timeout=10)
    assert report.inbox_deleted == 1
    assert await _inbox_ids(sessions) == {"wamid.held"}
    later = await trim(sessions, RetentionPolicy(), NOW)  # the next run takes it
    assert later.inbox_deleted == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(InboxItem)) == 0


@contextlib.contextmanager
def _statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements ``engine`` runs meanwhile."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.strip())

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_old_cancelled_touches_that_never_went_out_are_trimmed(sessions: Sessions) -> None:
    """A quiet WhatsApp prospect's cadence is cancelled by each reply: five rows a turn that
    nobody saw. Old ones go; one that reached the outbox, recent ones and live ones stay."""
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        sent = await enqueue(
            session,
            key=f"lead:{lead_id}:touch:whatsapp_quiet:nudge:0",
            channel="whatsapp",
            recipient="+14155550100",
            payload={"text": "Still there?"},
            now=NOW - 100 * DAY,
        )
    touches = {  # (step, cycle): (status, age, outbox row)
        ("nudge", 0): ("sent", 100 * DAY, sent),
        ("day1", 0): ("cancelled", 100 * DAY, None),
        ("nudge", 1): ("cancelled", 99 * DAY, None),
        ("day1", 1): ("cancelled", 99 * DAY, None),
        ("nudge", 2): ("cancelled", 3 * DAY, None),
        ("day1", 2): ("pending", 3 * DAY, None),
    }
    async with sessions.begin() as session:
        await session.execute(
            insert(Touch),
            [
                {
                    "lead_id": lead_id,
                    "sequence": "whatsapp_quiet",
                    "step": step,
                    "cycle": cycle,
                    "channel": "whatsapp",
                    "due_at": NOW - age,
                    "status": status,
                    "outbox_id": outbox,
                    "created_at": NOW - age,
                }
                for (step, cycle), (status, age, outbox) in touches.items()
            ],
        )

    report = await trim(sessions, RetentionPolicy(days=90), NOW)

    assert report.touches_deleted == 3
    async with sessions() as session:
        left = {(t.step, t.cycle) for t in await session.scalars(select(Touch))}
    assert left == {("nudge", 0), ("nudge", 2), ("day1", 2)}
    assert (await trim(sessions, RetentionPolicy(days=90), NOW)).touches_deleted == 0
