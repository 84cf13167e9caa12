"""Touches: the rows of the follow-up cadences (one per lead, sequence, step and cycle).

Status flow::

    pending → claimed → queued | awaiting_approval → queued | skipped | failed
    queued → sent | failed | uncertain     (follows its outbox row: ``scheduler.delivery.outbox``)
    pending | claimed | awaiting_approval → cancelled

``queued`` means the message is in the outbox; ``sent`` (and ``sent_at``) only once the
channel accepted it, so dormancy and the move to contacted count what actually went out.

The sweeper claims due rows with :func:`claim_due` (one ``UPDATE … WHERE id IN (SELECT …
FOR UPDATE SKIP LOCKED) RETURNING``; on SQLite the same statement runs under ``BEGIN
IMMEDIATE``), keeps its claims fresh with :func:`renew` while it drafts, records each
outcome fenced on its claim (:func:`still_claimed`), and :func:`reap` takes back the claims
of a sweeper that died. Statements that lock a lead's touches lock the lead first (the one
lock order of :mod:`scheduler.store`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import Lead, OutboxItem, Touch


class TouchStatus(StrEnum):
    """Where a touch is in its life."""

    PENDING = "pending"
    CLAIMED = "claimed"
    AWAITING_APPROVAL = "awaiting_approval"
    QUEUED = "queued"  # in the outbox, not sent yet
    SENT = "sent"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNCERTAIN = "uncertain"  # the send may or may not have gone out (shown to a human)


OPEN = (TouchStatus.PENDING.value, TouchStatus.CLAIMED.value, TouchStatus.AWAITING_APPROVAL.value)

_TOUCHES = cast(Table, Touch.__table__)
_LEADS = cast(Table, Lead.__table__)
_STEP_KEY = ["lead_id", "sequence", "step", "cycle"]
_LAST_CYCLE = (
    select(func.max(_TOUCHES.c.cycle))
    .where(
        _TOUCHES.c.lead_id == bindparam("b_lead"), _TOUCHES.c.sequence == bindparam("b_sequence")
    )
    .scalar_subquery()
)
# Built once, run with parameters (building statements costs more than running them).
_LEAD_TO_START = (
    select(_LEADS.c.timezone, _LEADS.c.phone, _LAST_CYCLE.label("last_cycle"))
    .where(_LEADS.c.id == bindparam("b_lead"))
    .with_for_update(of=_LEADS, key_share=True)
)


# -- starting and cancelling sequences ------------------------------------------------------


async def lead_to_start(session: AsyncSession, lead_id: int, sequence: str) -> Any:
    """Lock the lead (the lead before its touches: the one lock order) and read what
    scheduling ``sequence`` needs in the same round trip: its ``timezone``, ``phone`` and
    the ``last_cycle`` of that sequence (None: never started). None if it does not exist."""
    return (
        await session.execute(_LEAD_TO_START, {"b_lead": lead_id, "b_sequence": sequence})
    ).one_or_none()


async def insert_touches(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert touch rows, leaving alone those whose (lead, sequence, step, cycle) exists;
    how many were inserted.

    A prebuilt statement run with the rows as parameters (one multi-row INSERT all the
    same): building a multi-row statement per call cost more than running it, and turns
    call this whenever a question is left open."""
    statement = insert_or_ignore(session, _TOUCHES, _STEP_KEY, returning=(_TOUCHES.c.id,))
    return len((await session.execute(statement, rows)).all())


async def cancel_open(session: AsyncSession, lead_id: int, *, reason: str) -> int:
    """Cancel every open touch of the lead in one statement; how many were cancelled.

    The lead row is locked first (on Postgres; SQLite has one writer anyway), inside the
    statement: a sweep recording this lead's touches locks the lead first too, so the two
    wait for each other instead of deadlocking (touches-then-lead vs lead-then-touches)."""
    lead = (
        select(Lead.id).where(Lead.id == lead_id).with_for_update(key_share=True).scalar_subquery()
    )
    result = await session.execute(
        update(Touch)
        .where(Touch.lead_id == lead, Touch.status.in_(OPEN))
        .values(status=TouchStatus.CANCELLED.value, note=reason[:500], claim_token=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def cancel_waiting(session: AsyncSession, lead_id: int, *, reason: str) -> None:
    """Cancel the lead's touches still pending or awaiting approval (not its claimed ones)."""
    await session.execute(
        update(Touch)
        .where(
            Touch.lead_id == lead_id,
            Touch.status.in_((TouchStatus.PENDING.value, TouchStatus.AWAITING_APPROVAL.value)),
        )
        .values(status=TouchStatus.CANCELLED.value, note=reason)
        .execution_options(synchronize_session=False)
    )


# -- the sweeper's claims -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A touch this process now owns until it records the outcome or the lease runs out."""

    id: int
    lead_id: int
    sequence: str
    step: str
    cycle: int
    channel: str
    attempts: int
    created_at: datetime
    token: str


async def claim_due(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime, limit: int
) -> list[Claimed]:
    """Claim up to ``limit`` due pending touches, oldest first, in one statement and its own
    short transaction. Concurrent callers never get the same row (SKIP LOCKED on Postgres;
    SQLite's ``BEGIN IMMEDIATE`` serializes writers)."""
    token = str(uuid.uuid4())
    # A MATERIALIZED CTE runs exactly once. As a plain ``IN (subquery)`` Postgres may rescan
    # the SKIP LOCKED subquery and claim more than ``limit`` rows (measured: 5 for LIMIT 2).
    due = (
        select(Touch.id)
        .where(Touch.status == TouchStatus.PENDING.value, Touch.due_at <= now)
        .order_by(Touch.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
        .prefix_with("MATERIALIZED")
    )
    statement = (
        update(Touch)
        .where(Touch.id.in_(select(due.c.id)), Touch.status == TouchStatus.PENDING.value)
        .values(
            status=TouchStatus.CLAIMED.value,
            claim_token=token,
            claimed_at=now,
            attempts=Touch.attempts + 1,
        )
        .returning(
            Touch.id,
            Touch.lead_id,
            Touch.sequence,
            Touch.step,
            Touch.cycle,
            Touch.channel,
            Touch.attempts,
            Touch.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    async with sessions.begin() as session:
        rows = (await session.execute(statement)).all()
    claims = [
        Claimed(
            id=r.id,
            lead_id=r.lead_id,
            sequence=r.sequence,
            step=r.step,
            cycle=r.cycle,
            channel=r.channel,
            attempts=r.attempts,
            created_at=r.created_at,
            token=token,
        )
        for r in rows
    ]
    return sorted(claims, key=lambda c: c.id)


async def renew(sessions: async_sessionmaker[AsyncSession], token: str, *, now: datetime) -> int:
    """Stamp the claims of ``token`` (still claimed) with ``now``: the sweep that holds them
    is alive, so the reaper must not take them back. Returns how many were renewed."""
    async with sessions.begin() as session:
        result = await session.execute(
            update(Touch)
            .where(Touch.claim_token == token, Touch.status == TouchStatus.CLAIMED.value)
            .values(claimed_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def reap(
    sessions: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    lease: timedelta,
    max_attempts: int,
) -> tuple[int, int]:
    """Claims older than ``lease`` (their sweeper died) go back to pending, or to failed once
    ``max_attempts`` is reached. Returns (returned, failed). Nothing was sent for them: the
    send is enqueued in the same transaction that ends the claim."""
    stale = (Touch.status == TouchStatus.CLAIMED.value, Touch.claimed_at < now - lease)
    async with sessions.begin() as session:
        failed = await session.execute(
            update(Touch)
            .where(*stale, Touch.attempts >= max_attempts)
            .values(
                status=TouchStatus.FAILED.value,
                claim_token=None,
                note=f"claim expired {max_attempts} times",
            )
            .execution_options(synchronize_session=False)
        )
        returned = await session.execute(
            update(Touch)
            .where(*stale)
            .values(status=TouchStatus.PENDING.value, claim_token=None)
            .execution_options(synchronize_session=False)
        )
    return int(returned.rowcount), int(failed.rowcount)  # type: ignore[attr-defined]


async def still_claimed(session: AsyncSession, touch_ids: Sequence[int], token: str) -> set[int]:
    """Lock (ascending id) and return those of ``touch_ids`` still claimed by ``token``: a
    touch cancelled meanwhile, or reaped and claimed elsewhere, is not."""
    return set(
        await session.scalars(
            select(Touch.id)
            .where(
                Touch.id.in_(touch_ids),
                Touch.claim_token == token,
                Touch.status == TouchStatus.CLAIMED.value,
            )
            .order_by(Touch.id)
            .with_for_update()
        )
    )


async def update_touches(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write each row's columns to the touch its ``id`` names (one bulk UPDATE by key)."""
    if rows:
        await session.execute(update(Touch), rows)


async def supersede(
    session: AsyncSession,
    lead_ids: Sequence[int],
    *,
    sequence: str,
    cycle: int,
    earlier_steps: Sequence[str],
    note: str,
) -> None:
    """Skip the leads' drafts of ``earlier_steps`` of the sequence's ``cycle`` still
    awaiting a rep (a later step went out: they would arrive out of order)."""
    await session.execute(
        update(Touch)
        .where(
            Touch.lead_id.in_(lead_ids),
            Touch.sequence == sequence,
            Touch.cycle == cycle,
            Touch.step.in_(earlier_steps),
            Touch.status == TouchStatus.AWAITING_APPROVAL.value,
        )
        .values(status=TouchStatus.SKIPPED.value, note=note)
        .execution_options(synchronize_session=False)
    )


# -- single touches -------------------------------------------------------------------------


async def find_touch(session: AsyncSession, touch_id: int) -> Touch | None:
    """The touch ``touch_id`` (this session's copy if it has one), or None."""
    return await session.get(Touch, touch_id)


async def lead_of_touch(session: AsyncSession, touch_id: int) -> int | None:
    """The lead of a touch (a touch never changes lead), so its lead can be locked first."""
    lead_id: int | None = await session.scalar(select(Touch.lead_id).where(Touch.id == touch_id))
    return lead_id


async def lock_touch(session: AsyncSession, touch_id: int) -> Touch | None:
    """The touch ``touch_id``, locked, or None."""
    touch: Touch | None = await session.scalar(
        select(Touch).where(Touch.id == touch_id).with_for_update()
    )
    return touch


async def has_touch_in(session: AsyncSession, lead_id: int, statuses: Sequence[str]) -> bool:
    """Whether the lead has a touch in one of ``statuses``."""
    found = await session.scalar(
        select(Touch.id).where(Touch.lead_id == lead_id, Touch.status.in_(statuses)).limit(1)
    )
    return found is not None


# -- listings and scans -------------------------------------------------------------------------


async def list_touches(
    session: AsyncSession,
    *,
    status: str | None = None,
    lead_id: int | None = None,
    after_id: int = 0,
    limit: int = 50,
) -> list[Touch]:
    """Touches in id order, filtered by status and/or lead (for the API and the digest)."""
    query = select(Touch).where(Touch.id > after_id).order_by(Touch.id).limit(limit)
    if status is not None:
        query = query.where(Touch.status == status)
    if lead_id is not None:
        query = query.where(Touch.lead_id == lead_id)
    return list(await session.scalars(query))


async def deliveries(session: AsyncSession, touches: list[Touch]) -> dict[int, dict[str, Any]]:
    """How each touch's message fared, by touch id: its outbox row's ``state``, the
    provider's ``delivery_status`` (WhatsApp: delivered, read, failed) and ``error``."""
    by_row = {t.outbox_id: t.id for t in touches if t.outbox_id is not None}
    if not by_row:
        return {}
    rows = await session.execute(
        select(
            OutboxItem.id, OutboxItem.state, OutboxItem.delivery_status, OutboxItem.error
        ).where(OutboxItem.id.in_(sorted(by_row)))
    )
    return {
        by_row[r.id]: {"state": r.state, "delivery_status": r.delivery_status, "error": r.error}
        for r in rows
    }


async def awaiting_approval_unlinked(
    session: AsyncSession, sequence: str, step: str, *, limit: int
) -> list[Touch]:
    """Drafts of ``sequence``'s ``step`` held for a rep whose rep was not sent the approval
    link yet (``meta["approval_link_sent_at"]`` unset), oldest first. The filter is in the
    query, before the ``LIMIT``."""
    query = (
        select(Touch)
        .where(
            Touch.status == TouchStatus.AWAITING_APPROVAL.value,
            Touch.sequence == sequence,
            Touch.step == step,
            Touch.meta["approval_link_sent_at"].as_string().is_(None),
        )
        .order_by(Touch.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def touches_of_leads(session: AsyncSession, lead_ids: Iterable[int]) -> list[Any]:
    """Every touch of the leads (``lead_id``, ``sequence``, ``cycle``, ``created_at``,
    ``due_at``, ``sent_at``), by lead then id (oldest first)."""
    rows = await session.execute(
        select(
            Touch.lead_id,
            Touch.sequence,
            Touch.cycle,
            Touch.created_at,
            Touch.due_at,
            Touch.sent_at,
        )
        .where(Touch.lead_id.in_(lead_ids))
        .order_by(Touch.lead_id, Touch.id)
    )
    return list(rows.all())


async def silent_after_last(
    session: AsyncSession,
    *,
    sequence: str,
    last_step: str,
    sent_before: datetime,
    sent_after: datetime,
    stages: Sequence[str],
    limit: int,
) -> list[tuple[int, str]]:
    """``(lead id, stage)`` of leads in ``stages`` whose ``last_step`` of ``sequence`` was
    sent between ``sent_after`` and ``sent_before`` and who neither wrote nor booked since
    that touch was scheduled."""
    rows = await session.execute(
        select(Touch.lead_id, Lead.stage)
        .join(Lead, Lead.id == Touch.lead_id)
        .where(
            Touch.status == TouchStatus.SENT.value,
            Touch.sequence == sequence,
            Touch.step == last_step,
            Touch.sent_at <= sent_before,
            Touch.sent_at > sent_after,
            Lead.stage.in_(stages),
            or_(Lead.last_inbound_at.is_(None), Lead.last_inbound_at <= Touch.created_at),
            or_(Lead.booked_at.is_(None), Lead.booked_at <= Touch.created_at),
        )
        .limit(limit)
    )
    return [(int(lead_id), str(stage)) for lead_id, stage in rows]
