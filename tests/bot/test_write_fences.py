"""Stage and booking writes are fenced on what they read (issue 12, item 10).

Each race is replayed deterministically on Postgres with two explicit transactions: the
first is left open holding what it wrote; the second runs until it either finishes or
waits for a lock (read from ``pg_stat_activity`` for its own backend); then the first
commits and the second is let finish. SQLite serializes writers, so there is no race to
replay there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.calendly.bookings import BookingContext, apply_event
from bot.email.inbound import InboundEmailOutcome, handle_email
from bot.email.inbound_message import InboundEmail
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.engine import is_postgres
from scheduler.store.models import Booking, Lead, Stage, StageEvent
from scheduler.store.reps import add_rep
from tests.support.fakes.calendly import load_event

NOW = datetime(2026, 5, 4, 11, 0, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]
Work = Callable[[AsyncSession], Awaitable[Any]]


@pytest.fixture
def pg(engine: AsyncEngine, sessions: Sessions) -> Sessions:
    if not is_postgres(engine):
        pytest.skip("SQLite serializes writers (BEGIN IMMEDIATE): no race to replay")
    return sessions


async def interleave(engine: AsyncEngine, sessions: Sessions, first: Work, second: Work) -> Any:
    """Run ``first`` in an open transaction, then ``second`` in another until it finishes
    or waits for a lock, then commit ``first`` and let ``second`` finish and commit."""
    pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def run_second() -> Any:
        async with sessions.begin() as session:
            pid.set_result(await session.scalar(text("SELECT pg_backend_pid()")))
            return await second(session)

    async with sessions.begin() as session:
        await first(session)
        task = asyncio.create_task(run_second())
        backend = await pid
        async with engine.connect() as watcher:
            for _ in range(2000):  # bounded: 20 s at most
                waiting = await watcher.scalar(
                    text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :p"),
                    {"p": backend},
                )
                if task.done() or waiting:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the second transaction neither finished nor waited")
    return await task  # the first committed on leaving the block


async def test_a_reschedule_on_two_workers_keeps_booked_at(
    engine: AsyncEngine, pg: Sessions
) -> None:
    async with pg.begin() as session:
        data = LeadIn(name="Jane Doe", email="jane.d@acme.com", company="Acme")
        lead = (await intake(session, data, default_region="US", now=NOW)).lead
        await transition(session, lead.id, "contacted", reason=None, actor="test", now=NOW)
        await add_rep(session, name="Ana", email="ana@seller.com", whatsapp=None, now=NOW)
    ctx = BookingContext()
    async with pg.begin() as session:
        await apply_event(
            session, load_event("invitee_created", token=lead.token), now=NOW, ctx=ctx
        )
    later = NOW + timedelta(minutes=5)

    async def created(session: AsyncSession) -> Any:  # worker 1: the new booking
        body = load_event("reschedule_created", token=lead.token)
        return await apply_event(session, body, now=later, ctx=ctx)

    async def canceled(session: AsyncSession) -> Any:  # worker 2: the old one canceled
        body = load_event("reschedule_canceled", token=lead.token)
        return await apply_event(session, body, now=later, ctx=ctx)

    await interleave(engine, pg, created, canceled)

    async with pg() as session:
        bookings = (await session.scalars(select(Booking).order_by(Booking.id))).all()
        fresh = await session.get(Lead, lead.id)
    assert [b.status for b in bookings] == ["canceled", "active"]
    assert fresh is not None and fresh.booked_at == later


async def test_an_email_reply_racing_a_lost_move_does_not_reopen_the_lead(
    engine: AsyncEngine, pg: Sessions
) -> None:
    async with pg.begin() as session:
        data = LeadIn(name="Jane Doe", email="jane@acme.com", company="Acme")
        lead = (await intake(session, data, default_region="US", now=NOW)).lead
        await transition(session, lead.id, Stage.CONTACTED, reason=None, actor="t", now=NOW)
        await transition(session, lead.id, Stage.DORMANT, reason="quiet", actor="t", now=NOW)

    async def rep_marks_lost(session: AsyncSession) -> Any:
        return await transition(
            session, lead.id, Stage.LOST, reason="chose a competitor", actor="rep:ana", now=NOW
        )

    email = InboundEmail(
        sender="jane@acme.com",
        recipients=(f"reply+{lead.token}@bot.example.com",),
        subject="Re: still interested?",
        text="Yes, let's talk.",
        message_id="<race1@acme.com>",
    )

    async def reply(session: AsyncSession) -> Any:
        return await handle_email(session, email, now=NOW, notify=None)

    result = await interleave(engine, pg, rep_marks_lost, reply)

    assert (
        result.outcome is InboundEmailOutcome.REPLY
    )  # stored and told, but not a reason to reopen
    async with pg() as session:
        fresh = await session.get(Lead, lead.id)
        moves = [
            (e.from_stage, e.to_stage)
            for e in await session.scalars(
                select(StageEvent).where(StageEvent.lead_id == lead.id).order_by(StageEvent.id)
            )
        ]
    assert fresh is not None and fresh.stage == Stage.LOST
    assert fresh.last_inbound_at == NOW
    assert moves[-1] == ("dormant", "lost")
