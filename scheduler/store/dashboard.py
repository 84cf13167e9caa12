"""The Today page's figures: what a sales lead reads each morning, counted in the database.

The headline counts are one ``SELECT`` of scalar subqueries (one round trip); the time to
first touch reads one row per recent lead (bounded, newest first) for the caller to take
percentiles of; the two charts are a ``GROUP BY`` each. Callers pass the window edges
(``now`` is theirs), all UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.board import CAMPAIGN
from scheduler.store.models import Booking, Lead, Message, StageEvent, Touch
from scheduler.store.touches import TouchStatus

ACTIVE_BOOKING = "active"


@dataclass(frozen=True, slots=True)
class TodayCounts:
    """The headline counts of the Today page."""

    new_today: int
    new_week: int
    waiting_for_human: int
    drafts_waiting: int
    follow_ups_due: int
    bookings_today: int
    bookings_week: int


@dataclass(frozen=True, slots=True)
class FirstTouches:
    """How long the recent leads waited for our first message: the delays of those that got
    one (sorted, shortest first), and how many are still waiting. ``capped``: more leads
    were created in the window than were read (the figures are over the newest ones)."""

    delays: list[timedelta]
    untouched: int
    capped: bool


async def today_counts(
    session: AsyncSession, *, day_start: datetime, week_start: datetime, day_end: datetime
) -> TodayCounts:
    """New leads and bookings since ``day_start`` and since ``week_start``; conversations
    waiting for a human; drafts waiting for approval; pending touches due before
    ``day_end`` (the overdue ones included). Bookings count the active ones (a rescheduled
    call is one booking, a cancelled one none)."""

    def leads_since(since: datetime) -> object:
        return select(func.count()).where(Lead.created_at >= since).scalar_subquery()

    def bookings_since(since: datetime) -> object:
        return (
            select(func.count())
            .where(Booking.created_at >= since, Booking.status == ACTIVE_BOOKING)
            .scalar_subquery()
        )

    waiting = (
        select(func.count())
        .where(Lead.human_requested_at.is_not(None), Lead.taken_by_user_id.is_(None))
        .scalar_subquery()
    )
    drafts = (
        select(func.count())
        .where(Touch.status == TouchStatus.AWAITING_APPROVAL.value)
        .scalar_subquery()
    )
    due = (
        select(func.count())
        .where(Touch.status == TouchStatus.PENDING.value, Touch.due_at < day_end)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(
                leads_since(day_start),  # type: ignore[call-overload]
                leads_since(week_start),
                waiting,
                drafts,
                due,
                bookings_since(day_start),
                bookings_since(week_start),
            )
        )
    ).one()
    return TodayCounts(*(int(value) for value in row))


async def first_touches(session: AsyncSession, *, since: datetime, limit: int) -> FirstTouches:
    """The delay from creation to the first outbound message of each lead created since
    ``since`` (at most the ``limit`` newest leads)."""
    first_out = (
        select(func.min(Message.created_at))
        .where(Message.lead_id == Lead.id, Message.direction == "out")
        .scalar_subquery()
    )
    rows = (
        await session.execute(
            select(Lead.created_at, first_out.label("first_out"))
            .where(Lead.created_at >= since)
            # By the column filtered on, so that one index on it serves both (by id, SQLite
            # walked every lead backwards looking for the week's).
            .order_by(Lead.created_at.desc())
            .limit(limit + 1)
        )
    ).all()
    capped = len(rows) > limit
    rows = rows[:limit]
    delays = sorted(
        max(timedelta(0), row.first_out - row.created_at)
        for row in rows
        if row.first_out is not None
    )
    return FirstTouches(delays, untouched=len(rows) - len(delays), capped=capped)


async def stages_reached(session: AsyncSession, *, since: datetime) -> dict[str, int]:
    """Of the leads created since ``since``, how many reached each stage (by their stage
    audit trail: every lead counts once in ``new``, and once in each stage it entered)."""
    cohort = select(Lead.id).where(Lead.created_at >= since)
    rows = await session.execute(
        select(StageEvent.to_stage, func.count(func.distinct(StageEvent.lead_id)))
        .where(StageEvent.lead_id.in_(cohort))
        .group_by(StageEvent.to_stage)
    )
    return {stage: int(count) for stage, count in rows}


async def bookings_by_campaign(
    session: AsyncSession, *, since: datetime, limit: int
) -> list[tuple[str | None, int]]:
    """``(campaign, active bookings made since since)``, most first, at most ``limit``;
    campaign None gathers the bookings of leads without one (or of erased leads)."""
    campaign = CAMPAIGN.label("campaign")
    bookings = func.count(Booking.id).label("bookings")
    rows = await session.execute(
        select(campaign, bookings)
        .select_from(Booking)
        .outerjoin(Lead, Lead.id == Booking.lead_id)
        .where(Booking.created_at >= since, Booking.status == ACTIVE_BOOKING)
        .group_by(campaign)
        .order_by(bookings.desc(), campaign.asc().nulls_last())
        .limit(limit)
    )
    return [(row.campaign, int(row.bookings)) for row in rows]
