"""Read a lead to decide a write on it: under its row lock, fresh.

A write decided on a stale read is a lost update: a Calendly reschedule handled by two
workers cleared the ``booked_at`` the other had just set, and an email reply racing a
rep's "lost" move reopened the lead. Handlers that decide a stage or booking change re-read
the lead with :func:`lock_lead` first: the lead is the first row their transaction locks
(the store's lock order: leads, then touches, outbox, the rest), so two such transactions
on one lead take turns and the second decides on what the first committed. The stage
machine fences the move itself on the stage and version read (``expected_from``).

SQLite serializes writers (``BEGIN IMMEDIATE``) and renders no ``FOR UPDATE``.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead


async def lock_lead(session: AsyncSession, lead_id: int) -> Lead | None:
    """The lead ``lead_id`` re-read under a row lock held until the caller's transaction
    ends (the session's copy is refreshed; pending changes are flushed first); None if it
    does not exist."""
    lead: Lead | None = await session.scalar(
        select(Lead)
        .where(Lead.id == lead_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return lead
