"""The approval queue: drafts held for a person (touches ``awaiting_approval``) with their
leads, for the console's approvals page.

Reads only: approving and skipping go through the sweeper
(:meth:`scheduler.followups.sweeper.Sweeper.approve` / ``reject``), which locks in the one
lock order and re-checks the lead. Who sees what is the caller's to say: ``owners`` limits
the queue to leads owned by those reps, ``unowned`` adds the leads nobody owns yet.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import and_, case, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead, Rep, Touch
from scheduler.store.touches import TouchStatus

_WAITING = Touch.status == TouchStatus.AWAITING_APPROVAL.value


def _scope(owners: Collection[int] | None, unowned: bool) -> Any:
    """The filter on the lead's owner: None owners means every lead."""
    if owners is None:
        return None
    allowed = [Lead.owner_rep_id.in_(sorted(owners))] if owners else []
    if unowned:
        allowed.append(Lead.owner_rep_id.is_(None))
    return or_(*allowed) if allowed else false()


async def waiting_drafts(
    session: AsyncSession,
    *,
    owners: Collection[int] | None,
    unowned: bool = True,
    first: Sequence[tuple[str, str]] = (),
    limit: int = 100,
    focus: int | None = None,
) -> list[tuple[Touch, Lead, str | None]]:
    """``(touch, lead, owner's name)`` of the drafts waiting for a person, the steps in
    ``first`` (``(sequence, step)`` pairs, e.g. hot leads' first replies, where minutes
    count) ahead of the rest, each part oldest first. ``owners=None``: every lead's.
    ``focus``: that touch first, if it is waiting and in scope (a digest's edit link)."""
    urgent = (
        case((or_(*(and_(Touch.sequence == s, Touch.step == t) for s, t in first)), 0), else_=1)
        if first
        else None
    )
    query = (
        select(Touch, Lead, Rep.name)
        .join(Lead, Lead.id == Touch.lead_id)
        .outerjoin(Rep, Rep.id == Lead.owner_rep_id)
        .where(_WAITING)
    )
    scope = _scope(owners, unowned)
    if scope is not None:
        query = query.where(scope)
    order: list[Any] = [Touch.id] if urgent is None else [urgent, Touch.id]
    if focus is not None:
        order.insert(0, case((Touch.id == focus, 0), else_=1))
    rows = await session.execute(query.order_by(*order).limit(limit))
    return [(touch, lead, owner) for touch, lead, owner in rows]


async def count_waiting(
    session: AsyncSession, *, owners: Collection[int] | None, unowned: bool = True
) -> int:
    """How many drafts wait for a person among the leads of ``owners`` (None: all)."""
    query = select(func.count()).select_from(Touch).join(Lead, Lead.id == Touch.lead_id)
    query = query.where(_WAITING)
    scope = _scope(owners, unowned)
    if scope is not None:
        query = query.where(scope)
    return int(await session.scalar(query) or 0)


async def touches_and_leads(
    session: AsyncSession, touch_ids: Collection[int]
) -> dict[int, tuple[Touch, Lead]]:
    """Touches and their leads by touch id (a missing one is absent), to check who may act
    on each before acting."""
    if not touch_ids:
        return {}
    rows = await session.execute(
        select(Touch, Lead)
        .join(Lead, Lead.id == Touch.lead_id)
        .where(Touch.id.in_(sorted(touch_ids)))
    )
    return {touch.id: (touch, lead) for touch, lead in rows}
