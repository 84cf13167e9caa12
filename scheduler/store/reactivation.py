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

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import (
    DialogSessionRow,
    Lead,
    OutboxItem,
    Rep,
    Stage,
    StageEvent,
    Touch,
)
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


@dataclass(frozen=True, slots=True)
class WaitingDraft:
    """What the digest shows of one draft and its lead (plain columns: no ORM objects, so
    thousands of them stay cheap)."""

    touch_id: int
    cycle: int
    channel: str
    draft: str
    meta: dict[str, Any]
    lead_id: int
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    last_inbound_at: datetime | None


async def waiting_for_rep(
    session: AsyncSession, rep_id: int, sequences: Collection[str], *, limit: int
) -> tuple[list[WaitingDraft], int]:
    """The first ``limit`` drafts of ``sequences`` awaiting approval on the dormant leads
    ``rep_id`` owns (oldest first), and how many there are in all."""
    if not sequences:
        return [], 0
    # Driven from the rep's dormant leads (``ix_leads_owner_stage_id``), then each lead's
    # touches (``ix_touches_lead_status``): a lead that left dormancy had its drafts
    # cancelled. (Driven from the waiting touches instead, every rep's query read every
    # rep's drafts: 50 reps x 10,000 drafts.)
    scope = (
        Lead.owner_rep_id == rep_id,
        Lead.stage == Stage.DORMANT.value,
        Lead.erased_at.is_(None),
        Touch.status == _WAITING,
        Touch.sequence.in_(sorted(sequences)),
    )
    rows = await session.execute(
        select(
            Touch.id,
            Touch.cycle,
            Touch.channel,
            Touch.draft,
            Touch.meta,
            Lead.id,
            Lead.name,
            Lead.email,
            Lead.phone,
            Lead.company,
            Lead.last_inbound_at,
        )
        .select_from(Lead)
        .join(Touch, Touch.lead_id == Lead.id)
        .where(*scope)
        .order_by(Touch.id)
        .limit(limit)
    )
    drafts = [
        WaitingDraft(
            touch_id=int(r[0]),
            cycle=int(r[1]),
            channel=r[2],
            draft=r[3] or "",
            meta=r[4] or {},
            lead_id=int(r[5]),
            name=r[6],
            email=r[7],
            phone=r[8],
            company=r[9],
            last_inbound_at=r[10],
        )
        for r in rows
    ]
    if len(drafts) < limit:
        return drafts, len(drafts)
    total = await session.scalar(
        select(func.count()).select_from(Lead).join(Touch, Touch.lead_id == Lead.id).where(*scope)
    )
    return drafts, int(total or 0)


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


async def cancel_cycle(
    session: AsyncSession, lead_id: int, sequence: str, cycle: int, *, reason: str
) -> int:
    """Cancel the pending touches of one cycle of ``sequence`` for the lead (a rep skipped
    its reactivation: no "last call" follows a note that never went); how many. The lead row
    is locked first, inside the statement, as :func:`scheduler.store.touches.cancel_open`
    does (the one lock order)."""
    lead = (
        select(Lead.id).where(Lead.id == lead_id).with_for_update(key_share=True).scalar_subquery()
    )
    result = await session.execute(
        update(Touch)
        .where(
            Touch.lead_id == lead,
            Touch.sequence == sequence,
            Touch.cycle == cycle,
            Touch.status == TouchStatus.PENDING.value,
        )
        .values(status=TouchStatus.CANCELLED.value, note=reason[:500])
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
