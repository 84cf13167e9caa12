"""What happened: the stage audit trail (``stage_events``), webhook deliveries already
handled (``processed_events``) and the calls booked through Calendly (``bookings``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import Booking, Lead, ProcessedEvent, Stage, StageEvent, Touch

_EVENTS = cast(Table, StageEvent.__table__)
# Built once, executed with parameters: constructing statements costs more than running them.
_AUDIT = insert(_EVENTS).returning(_EVENTS.c.id)


async def record_stage_event(session: AsyncSession, values: Mapping[str, Any]) -> int:
    """Write one audit row (``lead_id``, ``from_stage``, ``to_stage``, ``reason``,
    ``actor``, ``at``) in the caller's transaction, with a prebuilt Core insert (no ORM
    flush); its id."""
    event_id: int = await session.scalar(_AUDIT, values)
    return event_id


async def record_stage_events(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write several audit rows (one statement, executed for every row)."""
    await session.execute(insert(_EVENTS), rows)


async def stage_history(session: AsyncSession, lead_id: int) -> list[StageEvent]:
    """Every audited move of a lead, oldest first."""
    query = select(StageEvent).where(StageEvent.lead_id == lead_id).order_by(StageEvent.id)
    return list((await session.scalars(query)).all())


async def dormant_without(
    session: AsyncSession, sequence: str, *, dormant_since: datetime, limit: int
) -> list[tuple[int, int, int | None]]:
    """``(lead id, stage event id, owner rep id)`` of the leads dormant (not opted out, not
    erased) since at least ``dormant_since`` by their latest stage event, that have no touch
    of ``sequence`` whose cycle is that event's id: each dormancy at most once. Longest
    dormant first, so a per-rep cap defers the most recent ones."""
    later = aliased(StageEvent)
    rows = await session.execute(
        select(StageEvent.lead_id, StageEvent.id, Lead.owner_rep_id)
        .join(Lead, Lead.id == StageEvent.lead_id)
        .where(
            Lead.stage == Stage.DORMANT.value,
            Lead.opted_out_at.is_(None),
            Lead.erased_at.is_(None),
            StageEvent.to_stage == Stage.DORMANT.value,
            StageEvent.at <= dormant_since,
            ~exists().where(and_(later.lead_id == StageEvent.lead_id, later.id > StageEvent.id)),
            ~exists().where(
                and_(
                    Touch.lead_id == StageEvent.lead_id,
                    Touch.sequence == sequence,
                    Touch.cycle == StageEvent.id,
                )
            ),
        )
        .order_by(StageEvent.id)
        .limit(limit)
    )
    return [
        (int(lead_id), int(event_id), None if owner is None else int(owner))
        for lead_id, event_id, owner in rows
    ]


async def first_time(session: AsyncSession, source: str, key: str, now: datetime) -> bool:
    """Record the event ``(source, key)`` as processed, in the caller's transaction; False
    when it already was (a vendor's retry). ``key`` is cut to the column's 500 characters."""
    statement = (
        insert_or_ignore(session, ProcessedEvent, ["source", "key"])
        .values(source=source, key=key[:500], created_at=now)
        .returning(ProcessedEvent.id)
    )
    return await session.scalar(statement) is not None


async def record_processed(session: AsyncSession, source: str, key: str, now: datetime) -> None:
    """Record the event ``(source, key)`` as processed (nothing if it already was)."""
    await session.execute(
        insert_or_ignore(session, ProcessedEvent, ["source", "key"]).values(
            source=source, key=key, created_at=now
        )
    )


async def booking(session: AsyncSession, values: dict[str, Any]) -> Booking:
    """The booking of ``values["invitee_uri"]``, inserted with ``values`` if it is the first
    we hear of it, else as stored (re-read: this session's copy is refreshed)."""
    await session.execute(insert_or_ignore(session, Booking, ["invitee_uri"]).values(**values))
    found = await session.scalar(
        select(Booking)
        .where(Booking.invitee_uri == values["invitee_uri"])
        .execution_options(populate_existing=True)
    )
    assert found is not None  # inserted or already there, in this transaction
    return found


async def active_booking_of(session: AsyncSession, lead_id: int) -> int | None:
    """The id of one of the lead's active (not canceled) bookings, or None."""
    booking_id: int | None = await session.scalar(
        select(Booking.id).where(Booking.lead_id == lead_id, Booking.status == "active").limit(1)
    )
    return booking_id
