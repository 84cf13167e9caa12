"""The cadence's effect on stages: silence → dormant, long dormancy → reactivation.

- :func:`mark_dormant`: a lead whose sequence's final touch went out ``after_last`` ago with
  no reply (nothing inbound since the sequence started) moves to dormant through the stage
  machine.
- :func:`start_reactivations`: a lead dormant at least ``start_when_dormant_for`` gets that
  sequence, once per dormancy: the cycle is the id of the stage event that made it dormant,
  so running the job again (or in two processes) inserts nothing new. At most
  ``per_rep_day`` a rep (``LEADBOT_REACTIVATION_PER_REP_DAY``) in any 24 hours.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from scheduler.errors import TransitionError
from scheduler.followups.cadence import Cadence
from scheduler.followups.touches import start_sequence
from scheduler.pipeline.stages import transition
from scheduler.store import Sessions
from scheduler.store.events import dormant_without
from scheduler.store.models import Stage
from scheduler.store.reactivation import started_since
from scheduler.store.reps import assign_owner
from scheduler.store.touches import silent_after_last

log = logging.getLogger("leadbot.lifecycle")

ACTIVE = (Stage.CONTACTED.value, Stage.QUALIFIED.value, Stage.PROPOSAL_SENT.value)
# Final touches older than this past their deadline are not looked at again (keeps the scan
# bounded as sent touches accumulate; a scheduler down for longer leaves those leads as is).
LOOKBACK = timedelta(days=30)
DAY = timedelta(days=1)


async def mark_dormant(
    sessions: Sessions,
    cadence: Cadence,
    *,
    now: datetime,
    limit: int = 500,
) -> int:
    """Move silent leads to dormant; returns how many moved."""
    moved = 0
    for name, sequence in cadence.sequences.items():
        if sequence.after_last is None:
            continue
        deadline = now - sequence.after_last
        async with sessions() as session:
            rows = await silent_after_last(
                session,
                sequence=name,
                last_step=sequence.steps[-1].id,
                sent_before=deadline,
                sent_after=deadline - LOOKBACK,
                stages=ACTIVE,
                limit=limit,
            )
        for lead_id, stage in rows:
            try:
                async with sessions.begin() as session:
                    await transition(
                        session,
                        lead_id,
                        Stage.DORMANT,
                        actor="scheduler",
                        now=now,
                        reason=f"no reply {_days(sequence.after_last)} after the last "
                        f"{name} touch",
                        expected_from=stage,
                    )
                moved += 1
            except TransitionError as exc:  # moved meanwhile (a reply, a rep): theirs stands
                log.info("lead %s not moved to dormant: %s", lead_id, exc)
    return moved


async def start_reactivations(
    sessions: Sessions,
    cadence: Cadence,
    *,
    now: datetime,
    limit: int = 500,
    per_rep_day: int | None = None,
) -> int:
    """Start each reactivation sequence for leads dormant long enough; returns how many.

    A lead without an owner gets one first (round robin): the owner approves the draft in
    their digest. With ``per_rep_day``, a rep's leads get at most that many starts in any
    24 hours (longest dormant first); the rest stay dormant and are picked up on a later
    run, so a rep's digest never grows past what they can read."""
    started = 0
    for name, sequence in cadence.sequences.items():
        if sequence.start_when_dormant_for is None:
            continue
        first = sequence.steps[0].id
        async with sessions() as session:
            rows = await dormant_without(
                session, name, dormant_since=now - sequence.start_when_dormant_for, limit=limit
            )
            counts = (
                await started_since(session, name, first, since=now - DAY)
                if per_rep_day is not None
                else {}
            )
        for lead_id, event_id, known_owner in rows:
            owner = known_owner
            async with sessions.begin() as session:
                if owner is None:
                    rep = await assign_owner(session, lead_id, now=now)
                    owner = rep.id if rep is not None else None
                if per_rep_day is not None and counts.get(owner, 0) >= per_rep_day:
                    continue  # this rep's share for today is taken; next run
                inserted = await start_sequence(
                    session, lead_id, name, cadence=cadence, now=now, cycle=event_id
                )
            if inserted > 0:
                started += 1
                counts[owner] = counts.get(owner, 0) + 1
    return started


def _days(delta: timedelta) -> str:
    if delta >= timedelta(days=1):
        return f"{delta.days} days"
    return f"{int(delta.total_seconds())} seconds"
