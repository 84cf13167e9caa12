"""Touch rows on every backend: idempotent start, deferral, one-statement cancel, claiming."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.followups.cadence import load_cadence
from scheduler.followups.touches import cancel_pending, start_sequence
from scheduler.store.models import Touch
from scheduler.store.touches import claim_due, reap
from tests.scheduler.cadence_support import NOW, Sessions, compressed, make_lead

DEFAULT = (
    Path(__file__).resolve().parents[2] / "scheduler" / "followups" / "cadences" / "default.yaml"
)


async def touches(sessions: Sessions, lead_id: int) -> list[Touch]:
    async with sessions() as session:
        return list(
            await session.scalars(select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.id))
        )


async def test_start_is_idempotent(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    lead_id = await make_lead(sessions)
    for expected in (5, 0):
        async with sessions.begin() as session:
            inserted = await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
        assert inserted == expected
    async with sessions.begin() as session:
        again = await start_sequence(
            session, lead_id, "new_lead", cadence=cadence, now=NOW, cycle=1
        )
    assert again == 5
    rows = await touches(sessions, lead_id)
    assert [(t.step, t.cycle) for t in rows[:5]] == [
        ("first_reply", 0),
        ("day1", 0),
        ("day3", 0),
        ("day7", 0),
        ("day14", 0),
    ]
    assert [t.due_at - NOW for t in rows[:5]] == [timedelta(seconds=s) for s in (0, 1, 3, 7, 14)]
    assert {t.status for t in rows} == {"pending"}


async def test_due_times_respect_the_leads_zone(sessions: Sessions) -> None:
    cadence = load_cadence(DEFAULT)
    # A New York lead captured on Friday 6 March 2026 at 19:30 local (00:30 UTC Saturday).
    lead_id = await make_lead(sessions, timezone="America/New_York")
    start = datetime(2026, 3, 7, 0, 30, tzinfo=UTC)
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=start)
    due = {t.step: t.due_at for t in await touches(sessions, lead_id)}
    assert due["first_reply"] == start  # answered at once, night or not
    # Day 1 lands on Saturday evening: moved to Monday 08:00 EDT (DST began on Sunday).
    assert due["day1"] == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    # Day 3 is Monday 20:30 EDT, in quiet hours: Tuesday 08:00 EDT.
    assert due["day3"] == datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


async def test_cancel_is_one_statement(
    sessions: Sessions, engine: AsyncEngine, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    lead_id, other = await make_lead(sessions, 1), await make_lead(sessions, 2)
    async with sessions.begin() as session:
        for lead in (lead_id, other):
            await start_sequence(session, lead, "new_lead", cadence=cadence, now=NOW)
        await session.execute(
            update(Touch)
            .where(Touch.lead_id == lead_id, Touch.step == "day1")
            .values(status="awaiting_approval")
        )
        await session.execute(
            update(Touch)
            .where(Touch.lead_id == lead_id, Touch.step == "day3")
            .values(status="claimed", claim_token="t")
        )
        await session.execute(
            update(Touch)
            .where(Touch.lead_id == lead_id, Touch.step == "first_reply")
            .values(status="sent")
        )
    statements: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with sessions.begin() as session:
            cancelled = await cancel_pending(session, lead_id, reason="replied", now=NOW)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert cancelled == 4
    assert [s.split()[0] for s in statements if not s.startswith(("BEGIN", "COMMIT"))] == [
        "UPDATE"
    ]
    by_step = {t.step: (t.status, t.note) for t in await touches(sessions, lead_id)}
    assert by_step["first_reply"] == ("sent", None)
    assert {by_step[s] for s in ("day1", "day3", "day7", "day14")} == {("cancelled", "replied")}
    assert {t.status for t in await touches(sessions, other)} == {"pending"}


async def test_claim_takes_due_rows_oldest_first(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    claims = await claim_due(sessions, now=NOW + timedelta(seconds=3), limit=10)
    assert [c.step for c in claims] == ["first_reply", "day1", "day3"]
    assert {c.attempts for c in claims} == {1} and len({c.token for c in claims}) == 1
    assert await claim_due(sessions, now=NOW + timedelta(seconds=3), limit=10) == []


async def _many_due(sessions: Sessions, leads: int) -> int:
    lead_id = await make_lead(sessions, 0)
    rows = [
        {
            "lead_id": lead_id,
            "sequence": "s",
            "step": f"x{i}",
            "cycle": 0,
            "channel": "email",
            "due_at": NOW - timedelta(seconds=i % 97),
            "status": "pending",
            "meta": {},
        }
        for i in range(leads)
    ]
    async with sessions.begin() as session:
        await session.execute(insert(Touch), rows)
    return len(rows)


async def test_concurrent_claimers_never_share_a_row(sessions: Sessions) -> None:
    total = await _many_due(sessions, 3000)

    async def claimer() -> list[int]:
        got: list[int] = []
        while batch := await claim_due(sessions, now=NOW, limit=50):
            got += [c.id for c in batch]
            await asyncio.sleep(0)
        return got

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    every = [i for r in results for i in r]
    assert len(every) == total and len(set(every)) == total
    assert sum(1 for r in results if r) >= 2  # they really ran side by side
    async with sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).select_from(Touch).where(Touch.status == "claimed")
            )
            == total
        )


async def test_reaper_returns_stale_claims(sessions: Sessions, tmp_path: Path) -> None:
    cadence = compressed(tmp_path)
    lead_id = await make_lead(sessions)
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "new_lead", cadence=cadence, now=NOW)
    await claim_due(sessions, now=NOW + timedelta(seconds=1), limit=2)
    lease = timedelta(minutes=5)
    assert await reap(sessions, now=NOW + timedelta(minutes=1), lease=lease, max_attempts=2) == (
        0,
        0,
    )
    later = NOW + timedelta(minutes=6)
    assert await reap(sessions, now=later, lease=lease, max_attempts=2) == (2, 0)
    again = await claim_due(sessions, now=later, limit=2)
    assert [c.attempts for c in again] == [2, 2]
    much_later = later + timedelta(minutes=6)
    assert await reap(sessions, now=much_later, lease=lease, max_attempts=2) == (0, 2)
    statuses = {t.step: t.status for t in await touches(sessions, lead_id)}
    assert statuses["first_reply"] == statuses["day1"] == "failed"
