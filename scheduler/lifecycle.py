"""The cadence's effect on stages: silence → dormant, long dormancy → reactivation.

- :func:`mark_dormant`: a lead whose sequence's final touch went out ``after_last`` ago with
  no reply (nothing inbound since the sequence started) moves to dormant through the stage
  machine.
- :func:`start_reactivations`: a lead dormant at least ``start_when_dormant_for`` gets that
  sequence, once per dormancy: the cycle is the id of the stage event that made it dormant,
  so running the job again (or in two processes) inserts nothing new.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from scheduler.cadence import Cadence
from scheduler.errors import TransitionError
from scheduler.stages import transition
from scheduler.store.models import Lead, Stage, StageEvent, Touch
from scheduler.touches import TouchStatus, start_sequence

log = logging.getLogger("leadbot.lifecycle")

ACTIVE = (Stage.CONTACTED.value, Stage.QUALIFIED.value, Stage.PROPOSAL_SENT.value)
# Final touches older than this past their deadline are not looked at again (keeps the scan
# bounded as sent touches accumulate; a scheduler down for longer leaves those leads as is).
LOOKBACK = timedelta(days=30)


async def mark_dormant(
    sessions: async_sessionmaker[AsyncSession], cadence: Cadence, *, now: datetime,
    limit: int = 500,
) -> int:  # fmt: skip
    """Move silent leads to dormant; returns how many moved."""
    moved = 0
    for name, sequence in cadence.sequences.items():
        if sequence.after_last is None:
            continue
        deadline = now - sequence.after_last
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(Touch.lead_id, Lead.stage)
                    .join(Lead, Lead.id == Touch.lead_id)
                    .where(
                        Touch.status == TouchStatus.SENT.value,
                        Touch.sequence == name,
                        Touch.step == sequence.steps[-1].id,
                        Touch.sent_at <= deadline,
                        Touch.sent_at > deadline - LOOKBACK,
                        Lead.stage.in_(ACTIVE),
                        or_(Lead.last_inbound_at.is_(None),
                            Lead.last_inbound_at <= Touch.created_at),
                        or_(Lead.booked_at.is_(None), Lead.booked_at <= Touch.created_at),
                    )
                    .limit(limit)
                )
            ).all()  # fmt: skip
        for lead_id, stage in rows:
            try:
                async with sessions.begin() as session:
                    await transition(
                        session, lead_id, Stage.DORMANT, actor="scheduler", now=now,
                        reason=f"no reply {_days(sequence.after_last)} after the last "
                               f"{name} touch",
                        expected_from=stage,
                    )  # fmt: skip
                moved += 1
            except TransitionError as exc:  # moved meanwhile (a reply, a rep): theirs stands
                log.info("lead %s not moved to dormant: %s", lead_id, exc)
    return moved


async def start_reactivations(
    sessions: async_sessionmaker[AsyncSession], cadence: Cadence, *, now: datetime,
    limit: int = 500,
) -> int:  # fmt: skip
    """Start each reactivation sequence for leads dormant long enough; returns how many."""
    started = 0
    later = aliased(StageEvent)
    for name, sequence in cadence.sequences.items():
        if sequence.start_when_dormant_for is None:
            continue
        async with sessions() as session:
            rows = (
                await session.execute(
                    select(StageEvent.lead_id, StageEvent.id)
                    .join(Lead, Lead.id == StageEvent.lead_id)
                    .where(
                        Lead.stage == Stage.DORMANT.value,
                        Lead.opted_out_at.is_(None),
                        StageEvent.to_stage == Stage.DORMANT.value,
                        StageEvent.at <= now - sequence.start_when_dormant_for,
                        ~exists().where(and_(later.lead_id == StageEvent.lead_id,
                                             later.id > StageEvent.id)),
                        ~exists().where(and_(Touch.lead_id == StageEvent.lead_id,
                                             Touch.sequence == name,
                                             Touch.cycle == StageEvent.id)),
                    )
                    .limit(limit)
                )
            ).all()  # fmt: skip
        for lead_id, event_id in rows:
            async with sessions.begin() as session:
                inserted = await start_sequence(
                    session, lead_id, name, cadence=cadence, now=now, cycle=event_id
                )
            started += inserted > 0
    return started


def _days(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return f"{delta.days} days"
    return f"{int(delta.total_seconds())} seconds"
