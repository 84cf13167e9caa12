"""Who has a conversation: the take-over queue, and the conditional UPDATEs that hand a
conversation to a console user and back (issue 14, item 4).

A conversation *waits for a person* when its lead has ``human_requested_at`` set (the bot
paused itself for a handoff) and no ``taken_by_user_id``, and is neither erased nor opted
out. Taking it, taking it from someone (an admin) and handing it back are each ONE
conditional UPDATE fenced on the owner read (FENCING in :mod:`scheduler.store`): of two
users who race, exactly one sees a row count of 1. The UPDATE is the first lead row its
transaction locks (THE ONE LOCK ORDER), so the caller may go on to the lead's other rows.

Reads of the queue select only leads in the take-over set (``human_requested_at`` or
``taken_by_user_id`` set); :data:`IN_TAKEOVER` is written once so that a partial index
with that predicate serves every query here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead, Rep, User

_LEADS = cast(Table, Lead.__table__)
QUEUE_LIMIT = 500  # entries per list: a team with more waiting has a bigger problem than paging
IN_TAKEOVER = or_(_LEADS.c.human_requested_at.is_not(None), _LEADS.c.taken_by_user_id.is_not(None))
"""The leads the take-over queue is about (a partial index with this predicate serves it)."""


@dataclass(frozen=True, slots=True)
class TakeoverEntry:
    """One conversation of the take-over queue: the lead, since when it waits for a person,
    and who has it (``holder``: the rep's name or the user's email)."""

    lead_id: int
    name: str | None
    company: str | None
    phone: str | None
    email: str | None
    stage: str
    human_requested_at: datetime | None
    last_inbound_at: datetime | None
    taken_by_user_id: int | None
    taken_at: datetime | None
    holder: str | None
    holder_email: str | None
    opted_out: bool


def _holder_columns() -> tuple[Any, ...]:
    return (
        func.coalesce(Rep.name, User.email).label("holder"),
        User.email.label("holder_email"),
    )


def _entry(row: Any) -> TakeoverEntry:
    return TakeoverEntry(
        lead_id=row.id,
        name=row.name,
        company=row.company,
        phone=row.phone,
        email=row.email,
        stage=row.stage,
        human_requested_at=row.human_requested_at,
        last_inbound_at=row.last_inbound_at,
        taken_by_user_id=row.taken_by_user_id,
        taken_at=row.taken_at,
        holder=row.holder,
        holder_email=row.holder_email,
        opted_out=row.opted_out_at is not None,
    )


def _entries_query() -> Any:
    """The lead columns of an entry with its holder (outer joins: nobody may have it)."""
    c = _LEADS.c
    return (
        select(
            c.id,
            c.name,
            c.company,
            c.phone,
            c.email,
            c.stage,
            c.human_requested_at,
            c.last_inbound_at,
            c.taken_by_user_id,
            c.taken_at,
            c.opted_out_at,
            *_holder_columns(),
        )
        .select_from(
            _LEADS.outerjoin(User, User.id == c.taken_by_user_id).outerjoin(
                Rep, Rep.id == User.rep_id
            )
        )
        .where(c.erased_at.is_(None))
    )


async def waiting(session: AsyncSession, *, limit: int = QUEUE_LIMIT) -> list[TakeoverEntry]:
    """Conversations waiting for a person (asked, nobody has them, not opted out), the one
    waiting longest first."""
    c = _LEADS.c
    rows = await session.execute(
        _entries_query()
        .where(
            IN_TAKEOVER,
            c.human_requested_at.is_not(None),
            c.taken_by_user_id.is_(None),
            c.opted_out_at.is_(None),
        )
        .order_by(c.human_requested_at, c.id)
        .limit(limit)
    )
    return [_entry(r) for r in rows]


async def taken(session: AsyncSession, *, limit: int = QUEUE_LIMIT) -> list[TakeoverEntry]:
    """Conversations someone has, taken longest ago first (the caller splits them into
    "mine" and "others")."""
    c = _LEADS.c
    rows = await session.execute(
        _entries_query()
        .where(IN_TAKEOVER, c.taken_by_user_id.is_not(None))
        .order_by(c.taken_at, c.id)
        .limit(limit)
    )
    return [_entry(r) for r in rows]


async def queue_state(session: AsyncSession) -> list[tuple[int, int | None]]:
    """``(lead id, taken by)`` of every conversation in the take-over set, by lead id: what
    changes when a conversation enters, leaves or changes hands (the queue's live stream
    compares it)."""
    c = _LEADS.c
    rows = await session.execute(
        select(c.id, c.taken_by_user_id)
        .where(
            IN_TAKEOVER,
            c.erased_at.is_(None),
            or_(c.taken_by_user_id.is_not(None), c.opted_out_at.is_(None)),
        )
        .order_by(c.id)
        .limit(2 * QUEUE_LIMIT)
    )
    return [(int(r.id), r.taken_by_user_id) for r in rows]


async def entry(session: AsyncSession, lead_id: int) -> TakeoverEntry | None:
    """The lead ``lead_id`` as the take-over sees it (in the queue or not); None when it
    does not exist or was erased."""
    row = (await session.execute(_entries_query().where(_LEADS.c.id == lead_id))).one_or_none()
    return _entry(row) if row is not None else None


# -- the fenced writes -------------------------------------------------------------------


async def take(session: AsyncSession, lead_id: int, *, user_id: int, now: datetime) -> bool:
    """Give the conversation to ``user_id`` if nobody has it (and the lead is neither erased
    nor opted out); the bot stays quiet (``bot_paused``). One conditional UPDATE: True when
    it applied."""
    return await _fenced(
        session,
        lead_id,
        _LEADS.c.taken_by_user_id.is_(None),
        taken_by_user_id=user_id,
        taken_at=now,
        bot_paused=True,
        updated_at=now,
    )


async def take_from(
    session: AsyncSession, lead_id: int, *, from_user_id: int, user_id: int, now: datetime
) -> bool:
    """Give the conversation to ``user_id`` if ``from_user_id`` still has it (an admin
    taking over from someone). One conditional UPDATE: True when it applied."""
    return await _fenced(
        session,
        lead_id,
        _LEADS.c.taken_by_user_id == from_user_id,
        taken_by_user_id=user_id,
        taken_at=now,
        bot_paused=True,
        updated_at=now,
    )


async def hand_back(
    session: AsyncSession, lead_id: int, *, owner_user_id: int, now: datetime
) -> bool:
    """Give the conversation back to the bot if ``owner_user_id`` still has it: nobody has
    it, nobody is waiting for a person, the bot answers again. One conditional UPDATE:
    True when it applied."""
    return await _fenced(
        session,
        lead_id,
        _LEADS.c.taken_by_user_id == owner_user_id,
        allow_opted_out=True,
        taken_by_user_id=None,
        taken_at=None,
        human_requested_at=None,
        bot_paused=False,
        updated_at=now,
    )


async def _fenced(
    session: AsyncSession,
    lead_id: int,
    owner: Any,
    *,
    allow_opted_out: bool = False,
    **values: Any,
) -> bool:
    c = _LEADS.c
    conditions: Sequence[Any] = (c.id == lead_id, owner, c.erased_at.is_(None))
    if not allow_opted_out:
        conditions = (*conditions, c.opted_out_at.is_(None))
    statement = update(_LEADS).where(*conditions).values(values).returning(c.id)
    return await session.scalar(statement) is not None
