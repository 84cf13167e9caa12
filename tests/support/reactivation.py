"""A dormant lead whose reactivation draft waits for its owner's approval (digest tests)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import transition
from scheduler.store.models import Touch


async def waiting_reactivation_draft(
    session: AsyncSession,
    lead: LeadIn,
    *,
    owner: int,
    now: datetime,
    age_days: int,
    dormant_days: int,
    draft: str,
    subject: str,
) -> Touch:
    """``lead``, owned by rep ``owner``, dormant for ``dormant_days`` at ``now``, with the
    reactivation step's email draft awaiting approval, due ``now``."""
    row = (
        await intake(
            session, lead, default_region="US", now=now - timedelta(days=dormant_days + 29)
        )
    ).lead
    row.owner_rep_id = owner
    await session.flush()
    went_quiet = now - timedelta(days=dormant_days)
    for stage in ("contacted", "dormant"):
        event = await transition(
            session, row.id, stage, reason="test", actor="test", now=went_quiet
        )
    touch = Touch(
        lead_id=row.id,
        sequence="reactivation",
        step="reactivate",
        cycle=event.id,
        channel="email",
        due_at=now,
        status="awaiting_approval",
        needs_approval=True,
        draft=draft,
        meta={"channel": "email", "subject": subject},
        created_at=now,
    )
    session.add(touch)
    await session.flush()
    return touch
