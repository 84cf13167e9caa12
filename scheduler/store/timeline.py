"""One lead's timeline: everything that happened to it, from every table, newest first,
a bounded page at a time.

The timeline merges six sources: stage events, messages (either direction; an outbound
one with its outbox row's state and the provider's delivery status), outbox rows not sent
(yet), touches, bookings and notes. Each entry has a place in one total order, its
:class:`TimelineCursor` ``(at, source, id)``; a page is the newest ``limit`` entries
before a cursor (keyset paging: each source reads at most ``limit + 1`` rows through its
lead index, so a lead with a hundred thousand messages costs what a small one does, and
entries written meanwhile never shift a page).

When is an entry: a message or outbox row when it was stored, a stage event when it
applied, a touch when it was sent, else when it is (or was) due, a booking and a note when
they were recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from scheduler.store.models import (
    Booking,
    LeadNote,
    Message,
    OutboxItem,
    OutboxState,
    StageEvent,
    Touch,
)

UNSENT = (
    OutboxState.PENDING.value,
    OutboxState.SENDING.value,
    OutboxState.FAILED.value,
    OutboxState.UNCERTAIN.value,
)
"""Outbox states with no message row (a sent row is recorded as a message)."""


class Source(IntEnum):
    """Where a timeline entry comes from; also its tie-break among entries of one instant."""

    STAGE_EVENT = 0
    MESSAGE = 1
    OUTBOX = 2
    TOUCH = 3
    BOOKING = 4
    NOTE = 5


@dataclass(frozen=True, slots=True, order=True)
class TimelineCursor:
    """An entry's place in the timeline's order (later is greater)."""

    at: datetime
    source: Source
    id: int


@dataclass(frozen=True, slots=True)
class SentMessage:
    """A message with, for an outbound one, how its send fared (None: no outbox row)."""

    message: Message
    state: str | None
    delivery_status: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One entry: its place and its row (a :class:`StageEvent`, :class:`SentMessage`,
    :class:`OutboxItem`, :class:`Touch`, :class:`Booking` or :class:`LeadNote`)."""

    cursor: TimelineCursor
    row: Any


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """The newest entries before a cursor, newest first; ``older`` is where the next page
    starts (None: this page reaches the lead's first entry)."""

    entries: list[TimelineEntry]
    older: TimelineCursor | None


Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def _before(
    at: Column, row_id: Column, source: Source, cursor: TimelineCursor
) -> ColumnElement[bool]:
    """Rows of ``source`` strictly before ``cursor`` in the order ``(at, source, id)``."""
    if source < cursor.source:
        return at <= cursor.at
    if source > cursor.source:
        return at < cursor.at
    return or_(at < cursor.at, and_(at == cursor.at, row_id < cursor.id))


async def _stage_events(
    session: AsyncSession, lead_id: int, where: ColumnElement[bool], limit: int
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(StageEvent)
        .where(StageEvent.lead_id == lead_id, where)
        .order_by(StageEvent.at.desc(), StageEvent.id.desc())
        .limit(limit)
    )
    return [_entry(e.at, Source.STAGE_EVENT, e.id, e) for e in rows]


async def _messages(
    session: AsyncSession, lead_id: int, where: ColumnElement[bool], limit: int
) -> list[TimelineEntry]:
    # The outbox row an outbound message was sent from carries the provider's id.
    sent_from = and_(
        Message.direction == "out",
        Message.external_id.is_not(None),
        OutboxItem.external_id == Message.external_id,
        OutboxItem.lead_id == Message.lead_id,
    )
    rows = await session.execute(
        select(Message, OutboxItem.state, OutboxItem.delivery_status, OutboxItem.error)
        .outerjoin(OutboxItem, sent_from)
        .where(Message.lead_id == lead_id, where)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return [
        _entry(m.created_at, Source.MESSAGE, m.id, SentMessage(m, state, status, error))
        for m, state, status, error in rows
    ]


async def _unsent(
    session: AsyncSession, lead_id: int, where: ColumnElement[bool], limit: int
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(OutboxItem)
        .where(OutboxItem.lead_id == lead_id, OutboxItem.state.in_(UNSENT), where)
        .order_by(OutboxItem.created_at.desc(), OutboxItem.id.desc())
        .limit(limit)
    )
    return [_entry(o.created_at, Source.OUTBOX, o.id, o) for o in rows]


_TOUCH_AT = func.coalesce(Touch.sent_at, Touch.due_at)


async def _touches(
    session: AsyncSession, lead_id: int, where: ColumnElement[bool], limit: int
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(Touch)
        .where(Touch.lead_id == lead_id, where)
        .order_by(_TOUCH_AT.desc(), Touch.id.desc())
        .limit(limit)
    )
    return [_entry(t.sent_at or t.due_at, Source.TOUCH, t.id, t) for t in rows]


async def _bookings(
    session: AsyncSession, lead_id: int, where: ColumnElement[bool], limit: int
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(Booking)
        .where(Booking.lead_id == lead_id, where)
        .order_by(Booking.created_at.desc(), Booking.id.desc())
        .limit(limit)
    )
    return [_entry(b.created_at, Source.BOOKING, b.id, b) for b in rows]


async def _notes(
    session: AsyncSession, lead_id: int, where: ColumnElement[bool], limit: int
) -> list[TimelineEntry]:
    rows = await session.scalars(
        select(LeadNote)
        .where(LeadNote.lead_id == lead_id, where)
        .order_by(LeadNote.created_at.desc(), LeadNote.id.desc())
        .limit(limit)
    )
    return [_entry(n.created_at, Source.NOTE, n.id, n) for n in rows]


def _entry(at: datetime, source: Source, row_id: int, row: Any) -> TimelineEntry:
    return TimelineEntry(TimelineCursor(at, source, row_id), row)


# Each source: its reader, and the (at, id) columns its cursor condition compares.
_SOURCES = (
    (Source.STAGE_EVENT, _stage_events, StageEvent.at, StageEvent.id),
    (Source.MESSAGE, _messages, Message.created_at, Message.id),
    (Source.OUTBOX, _unsent, OutboxItem.created_at, OutboxItem.id),
    (Source.TOUCH, _touches, _TOUCH_AT, Touch.id),
    (Source.BOOKING, _bookings, Booking.created_at, Booking.id),
    (Source.NOTE, _notes, LeadNote.created_at, LeadNote.id),
)


async def lead_timeline(
    session: AsyncSession,
    lead_id: int,
    *,
    limit: int,
    before: TimelineCursor | None = None,
    stage_events_only: bool = False,
) -> TimelinePage:
    """The newest ``limit`` entries of the lead's timeline before ``before`` (None: from
    the newest), newest first. ``stage_events_only``: the stage history alone (what an
    erased lead keeps)."""
    found: list[TimelineEntry] = []
    for source, read, at, row_id in _SOURCES:
        if stage_events_only and source is not Source.STAGE_EVENT:
            continue
        where = true() if before is None else _before(at, row_id, source, before)
        found += await read(session, lead_id, where, limit + 1)
    found.sort(key=lambda entry: entry.cursor, reverse=True)
    page = found[:limit]
    older = page[-1].cursor if len(found) > limit else None
    return TimelinePage(page, older)
