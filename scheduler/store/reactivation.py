"""Reads behind dormant reactivation: the per-rep daily cap and the rep's daily digest.

Plain reads; drafting, approving and skipping go through the sweeper, which locks in the one
lock order and re-checks the lead. Every query is bounded (by ``limit``, or by the set of
reps / leads it is given) so a digest over thousands of dormant leads stays flat in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import DialogSessionRow, Lead, OutboxItem, Rep, StageEvent, Touch
from scheduler.store.touches import TouchStatus

_WAITING = TouchStatus.AWAITING_APPROVAL.value


async def started_since(
    session: AsyncSession, sequence: str, step: str, *, since: datetime
) -> dict[int | None, int]:
    """How many leads got ``sequence`` started (its first ``step``) after ``since``, by the
    lead's owner rep (None: leads nobody owns)."""
    rows = await session.execute(
        select(Lead.owner_rep_id, func.count())
        .select_from(Touch)
        .join(Lead, Lead.id == Touch.lead_id)
        .where(Touch.sequence == sequence, Touch.step == step, Touch.created_at > since)
        .group_by(Lead.owner_rep_id)
    )
    return {None if owner is None else int(owner): int(n) for owner, n in rows}


@dataclass(frozen=True, slots=True)
class DigestRep:
    """A rep a digest can go to."""

    id: int
    name: str
    email: str
    timezone: str | None


async def digest_reps(session: AsyncSession, rep_id: int | None = None) -> list[DigestRep]:
    """The active reps with an email address (or only ``rep_id``, active or not), by id."""
    query = select(Rep.id, Rep.name, Rep.email, Rep.timezone).where(Rep.email.is_not(None))
    query = query.where(Rep.id == rep_id) if rep_id is not None else query.where(Rep.active)
    rows = await session.execute(query.order_by(Rep.id))
    return [DigestRep(int(r.id), r.name, r.email, r.timezone) for r in rows]


async def waiting_for_rep(
    session: AsyncSession, rep_id: int, sequences: Collection[str], *, limit: int
) -> tuple[list[tuple[Touch, Lead]], int]:
    """The first ``limit`` drafts of ``sequences`` awaiting approval on leads ``rep_id``
    owns (oldest first), and how many there are in all."""
    if not sequences:
        return [], 0
    scope = (
        Touch.status == _WAITING,
        Touch.sequence.in_(sorted(sequences)),
        Lead.owner_rep_id == rep_id,
        Lead.erased_at.is_(None),
    )
    rows = await session.execute(
        select(Touch, Lead)
        .join(Lead, Lead.id == Touch.lead_id)
        .where(*scope)
        .order_by(Touch.id)
        .limit(limit)
    )
    pairs: list[tuple[Touch, Lead]] = [(row[0], row[1]) for row in rows]
    if len(pairs) < limit:
        return pairs, len(pairs)
    total = await session.scalar(
        select(func.count()).select_from(Touch).join(Lead, Lead.id == Touch.lead_id).where(*scope)
    )
    return pairs, int(total or 0)


async def open_questions(session: AsyncSession, lead_ids: Iterable[int]) -> dict[int, str]:
    """The question each lead's conversation was waiting on (the dialog's open slot)."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(DialogSessionRow.lead_id, DialogSessionRow.state).where(
            DialogSessionRow.lead_id.in_(ids)
        )
    )
    found: dict[int, str] = {}
    for row in rows:
        state: Any = row.state
        slot = state.get("open_slot") if isinstance(state, dict) else None
        if isinstance(slot, str) and slot:
            found[int(row.lead_id)] = slot
    return found


async def stage_event_times(
    session: AsyncSession, event_ids: Iterable[int]
) -> dict[int, datetime]:
    """When each stage event (a reactivation touch's cycle: its move to dormant) happened."""
    ids = sorted(set(event_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(StageEvent.id, StageEvent.at).where(StageEvent.id.in_(ids))
    )
    return {int(i): at for i, at in rows}


async def key_taken(session: AsyncSession, key: str) -> bool:
    """Whether an outbox intent with ``key`` exists (a digest already sent for that day)."""
    return await session.scalar(select(OutboxItem.id).where(OutboxItem.key == key)) is not None
