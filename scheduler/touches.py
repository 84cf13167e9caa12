"""Touches are rows: start a sequence, cancel what is pending, claim what is due.

The API other components call:

- :func:`start_sequence` inserts one row per step (idempotent: UNIQUE (lead, sequence, step,
  cycle)), with ``due_at`` already moved out of quiet hours and onto business days in the
  lead's time zone;
- :func:`cancel_pending` cancels every open touch of a lead in one statement (call it on
  any inbound reply, a booking, an opt-out, a move to won/lost). It locks the lead row
  before the touches (the one lock order of :mod:`scheduler.store`), in the same statement.

The sweeper (:mod:`scheduler.sweeper`) uses :func:`claim_due` (one ``UPDATE … WHERE id IN
(SELECT … FOR UPDATE SKIP LOCKED) RETURNING``; on SQLite the same statement runs under
``BEGIN IMMEDIATE``), :func:`renew` (a live sweep keeps its claims fresh while it drafts,
so the reaper never takes back the work of a sweep that is merely slow) and :func:`reap`.
Status flow::

    pending → claimed → queued | awaiting_approval → queued | skipped | failed
    queued → sent | failed | uncertain     (follows its outbox row: ``scheduler.outbox``)
    pending | claimed | awaiting_approval → cancelled

``queued`` means the message is in the outbox; ``sent`` (and ``sent_at``) only once the
channel accepted it, so dormancy and the move to contacted count what actually went out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.cadence import Cadence, Step
from scheduler.errors import LeadbotError, NotFoundError
from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import Lead, OutboxItem, Touch
from scheduler.timing import next_allowed, zone_for

_TOUCHES = cast(Table, Touch.__table__)
_LEADS = cast(Table, Lead.__table__)
_STEP_KEY = ["lead_id", "sequence", "step", "cycle"]
_LAST_CYCLE = (
    select(func.max(_TOUCHES.c.cycle))
    .where(
        _TOUCHES.c.lead_id == bindparam("b_lead"), _TOUCHES.c.sequence == bindparam("b_sequence")
    )  # fmt: skip
    .scalar_subquery()
)
# Built once, run with parameters (building statements costs more than running them).
_LEAD_TO_START = (
    select(_LEADS.c.timezone, _LEADS.c.phone, _LAST_CYCLE.label("last_cycle"))
    .where(_LEADS.c.id == bindparam("b_lead"))
    .with_for_update(of=_LEADS, key_share=True)
)


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


class TouchStateError(LeadbotError):
    """The touch is not in a state that allows the operation (e.g. approving a sent one)."""

    code = "touch_state"
    status = 409


def outbox_key(lead_id: int, sequence: str, step: str, cycle: int) -> str:
    """The outbox key of a touch: one intent per (lead, sequence, step, cycle), ever."""
    return f"lead:{lead_id}:touch:{sequence}:{step}:{cycle}"


def due_at(step: Step, start: datetime, cadence: Cadence, zone_name: str | None,
           phone: str | None) -> datetime:  # fmt: skip
    """When ``step`` of a sequence started at ``start`` is due, after quiet hours (unless
    they would push it past the step's ``deadline``: then at its plain offset)."""
    due = start + step.offset
    if not step.respect_quiet_hours:
        return due
    zone = zone_for(zone_name, phone, cadence.default_timezone)
    allowed = next_allowed(due, zone, cadence.quiet_hours, cadence.business_days)
    if step.deadline is not None and allowed > start + step.deadline:
        return due
    return allowed


async def start_sequence(
    session: AsyncSession,
    lead_id: int,
    sequence: str,
    *,
    cadence: Cadence,
    now: datetime,
    cycle: int | None = None,
) -> int:
    """Schedule every step of ``sequence`` for the lead, in the caller's transaction.

    Returns how many rows were inserted: 0 when this (sequence, cycle) was already started
    (calling twice is harmless). Start a sequence again with a new ``cycle``; without one,
    a ``repeat`` sequence gets the lead's next cycle of it, any other cycle 0.
    Raises :class:`~scheduler.cadence.UnknownSequenceError` and
    :class:`~scheduler.errors.NotFoundError`.
    """
    definition = cadence.sequence(sequence)
    steps = definition.steps
    # The lead is locked here (the lead before its touches: the one lock order), and a
    # ``repeat`` sequence's last cycle read with it: one round trip for both.
    lead = (
        await session.execute(_LEAD_TO_START, {"b_lead": lead_id, "b_sequence": sequence})
    ).one_or_none()
    if lead is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    if cycle is None:
        last = lead.last_cycle if definition.repeat else None
        cycle = 0 if last is None else last + 1
    rows: list[dict[str, object]] = [
        {
            "lead_id": lead_id,
            "sequence": sequence,
            "step": step.id,
            "cycle": cycle,
            "channel": step.channel,
            "due_at": due_at(step, now, cadence, lead.timezone, lead.phone),
            "status": TouchStatus.PENDING.value,
            "needs_approval": step.approval is True,
            "attempts": 0,
            "meta": {},
            "created_at": now,
        }
        for step in steps
    ]
    # A prebuilt statement run with the rows as parameters (one multi-row INSERT all the
    # same): building a multi-row statement per call cost more than running it, and turns
    # call this whenever a question is left open.
    statement = insert_or_ignore(session, _TOUCHES, _STEP_KEY, returning=(_TOUCHES.c.id,))
    return len((await session.execute(statement, rows)).all())


async def cancel_pending(
    session: AsyncSession, lead_id: int, *, reason: str, now: datetime
) -> int:
    """Cancel every open touch of the lead (pending, being drafted, awaiting approval) in
    one statement, in the caller's transaction. Returns how many were cancelled.

    A touch being drafted right now loses its claim: the sweeper's fenced update then finds
    it cancelled and sends nothing.
    """
    # The lead row is locked first (on Postgres; SQLite has one writer anyway), inside the
    # statement: a sweep recording this lead's touches locks the lead first too, so the two
    # wait for each other instead of deadlocking (touches-then-lead vs lead-then-touches).
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
        )  # fmt: skip
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
        )  # fmt: skip
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
            )  # fmt: skip
            .execution_options(synchronize_session=False)
        )
        returned = await session.execute(
            update(Touch)
            .where(*stale)
            .values(status=TouchStatus.PENDING.value, claim_token=None)
            .execution_options(synchronize_session=False)
        )
    return int(returned.rowcount), int(failed.rowcount)  # type: ignore[attr-defined]


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
        select(OutboxItem.id, OutboxItem.state, OutboxItem.delivery_status, OutboxItem.error)
        .where(OutboxItem.id.in_(sorted(by_row)))
    )  # fmt: skip
    return {
        by_row[r.id]: {"state": r.state, "delivery_status": r.delivery_status, "error": r.error}
        for r in rows
    }
