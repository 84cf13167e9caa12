"""The invariant "no lead slips": every live lead in New or Contacted has a next step.

A lead in New or Contacted (not opted out, not handed to a person, no call booked) must have
one of: an open touch (pending, claimed, awaiting approval); an open conversation (inbox
rows not handled yet, or a message from them less than ``grace`` ago: a turn may be under
way); or a finished cadence whose dormancy is still counting down (``after_last`` of its
sequence). :func:`check_next_steps` runs periodically, walks every such lead (in pages, by
id, so no lead is ever hidden behind others), and for each one that has none of these:

- logs it;
- repairs it when it can: a Contacted lead whose last cadence ran out more than
  ``after_last`` ago moves to Dormant (``mark_dormant`` only sees a final touch that was
  sent; this also covers one that was skipped or failed); a Contacted lead that wrote
  after its last cadence started and was answered, or never had a cadence, gets the quiet
  sequence (its next cycle); one whose last message has no answer yet (an email reply
  waiting for the rep) is counted for a person, not nudged; a New lead whose first-touch
  decision named a sequence it does not have gets it;
- counts it, by stage and outcome (``scheduled``, ``dormant``, ``unrepaired``), for the
  service's gauge (the scheduler layer returns counts; ``bot`` owns the metrics).

A New lead the first-touch flow decided not to contact (``action: none``, a cold lead)
has its next step by decision and is not counted. Repairs run one lead per transaction,
the lead row locked first (the one lock order of :mod:`scheduler.store`), and re-check the
invariant under that lock, so a turn that scheduled touches meanwhile wins.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scheduler.errors import StoreError
from scheduler.followups.cadence import Cadence
from scheduler.followups.touches import OPEN, TouchStatus, start_sequence
from scheduler.pipeline.stages import transition
from scheduler.store import Session, Sessions
from scheduler.store.leads import lock_stage, without_next_step
from scheduler.store.models import Stage
from scheduler.store.touches import has_touch_in, touches_of_leads

log = logging.getLogger("leadbot.next_steps")

SCOPE = (Stage.NEW.value, Stage.CONTACTED.value)
OUTCOMES = ("scheduled", "dormant", "unrepaired")


@dataclass(frozen=True, slots=True)
class NextStepConfig:
    """Tuning of the check."""

    # The sequence a stalled conversation gets (the scripts' ``quiet_sequence``).
    quiet_sequence: str = "whatsapp_quiet"
    # A lead created or heard from more recently than this may have a turn under way.
    grace: timedelta = timedelta(minutes=15)
    # Dormancy countdown when the last cadence's sequence is gone from the file.
    default_after_last: timedelta = timedelta(days=14)
    page: int = 500


@dataclass(slots=True)
class NextStepReport:
    """What one check found: counts by (stage, outcome) and the leads concerned."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    lead_ids: list[int] = field(default_factory=list)

    @property
    def found(self) -> int:
        """How many leads had no next step."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class _Run:
    """A lead's latest sequence run: its touches' sequence, cycle, start and end."""

    sequence: str
    cycle: int
    started: datetime
    ended: datetime


async def check_next_steps(
    sessions: Sessions,
    cadence: Cadence,
    *,
    now: datetime,
    config: NextStepConfig = NextStepConfig(),
) -> NextStepReport:
    """Find, log, repair and count the live leads without a next step (see the module)."""
    report = NextStepReport()
    after = 0
    while True:
        async with sessions() as session:
            leads = await _candidates(session, after, now, config)
            runs = await _latest_runs(session, [lead.id for lead in leads])
        for lead in leads:
            outcome = await _judge(
                sessions, cadence, lead, runs.get(lead.id), now=now, config=config
            )
            if outcome is not None:
                report.counts[(lead.stage, outcome)] += 1
                report.lead_ids.append(lead.id)
        if len(leads) < config.page:
            break
        after = leads[-1].id
    if report.found:
        summary = ", ".join(f"{s}/{o}: {n}" for (s, o), n in sorted(report.counts.items()))
        log.warning(
            "%d live lead(s) had no next step (%s); first ids: %s",
            report.found,
            summary,
            report.lead_ids[:20],
        )
    return report


# A touch still to come, or one in the outbox waiting to go out, is a next step.
_UNDER_WAY = (*OPEN, TouchStatus.QUEUED.value)


async def _candidates(
    session: Session, after: int, now: datetime, config: NextStepConfig
) -> list[Any]:
    return await without_next_step(
        session,
        stages=SCOPE,
        under_way=_UNDER_WAY,
        quiet_since=now - config.grace,
        after_id=after,
        limit=config.page,
    )


async def _latest_runs(session: Session, lead_ids: list[int]) -> dict[int, _Run]:
    """Each lead's latest run (the sequence and cycle of its newest touch)."""
    if not lead_ids:
        return {}
    rows = await touches_of_leads(session, lead_ids)
    latest: dict[int, tuple[str, int]] = {}
    for row in rows:  # ordered by id: the last one seen is the newest
        latest[row.lead_id] = (row.sequence, row.cycle)
    runs: dict[int, _Run] = {}
    for row in rows:
        if latest[row.lead_id] != (row.sequence, row.cycle):
            continue
        ended = max(row.due_at, row.sent_at or row.due_at)
        run = runs.get(row.lead_id)
        runs[row.lead_id] = _Run(
            row.sequence,
            row.cycle,
            row.created_at if run is None else min(run.started, row.created_at),
            ended if run is None else max(run.ended, ended),
        )
    return runs


async def _judge(
    sessions: Sessions,
    cadence: Cadence,
    lead: Any,
    run: _Run | None,
    *,
    now: datetime,
    config: NextStepConfig,
) -> str | None:
    """The outcome for a lead without an open touch, or None when it has a next step."""
    if lead.stage == Stage.NEW.value:
        decision = (lead.qualification or {}).get("first_touch") or {}
        if run is None and decision.get("action") == "none":
            return None  # the first-touch flow decided not to contact it
        sequence = decision.get("sequence")
        if run is None and sequence in cadence.sequences:
            return await _schedule(
                sessions, cadence, lead.id, str(sequence), now=now, stage=lead.stage
            )
        log.warning(
            "lead %s is new with no touch to come and cannot be repaired here "
            "(first-touch decision: %s)",
            lead.id,
            decision or "none yet",
        )
        return "unrepaired"
    if run is None or (lead.last_inbound_at is not None and lead.last_inbound_at > run.started):
        inbound, outbound = lead.last_inbound_at, lead.last_outbound_at
        if inbound is not None and (outbound is None or outbound < inbound):
            # Their last message has no answer from us (an email reply waits for the rep):
            # nudging them would be wrong; a person has to answer. Counted, not repaired.
            log.warning(
                "lead %s is %s and their last message (%s) has no answer yet",
                lead.id,
                lead.stage,
                inbound.isoformat(),
            )
            return "unrepaired"
        # Never followed up, or they wrote after the last cadence started, we answered,
        # and nothing followed: the quiet cadence takes over (nudge, steps, dormant).
        if config.quiet_sequence not in cadence.sequences:
            log.error(
                "lead %s needs follow-ups but the cadence has no %r sequence",
                lead.id,
                config.quiet_sequence,
            )
            return "unrepaired"
        return await _schedule(
            sessions, cadence, lead.id, config.quiet_sequence, now=now, stage=lead.stage
        )
    sequence = cadence.sequences.get(run.sequence)
    after_last = (sequence.after_last if sequence else None) or config.default_after_last
    if now < run.ended + after_last:
        return None  # the cadence ran out; dormancy is still counting down
    return await _dormant(sessions, lead.id, run, after_last, now)


async def _locked_without_open_touch(session: Session, lead_id: int, stage: str) -> bool:
    """Lock the lead (first), then re-check under the lock that it still needs a repair."""
    if await lock_stage(session, lead_id) != stage:
        return False
    return not await has_touch_in(session, lead_id, _UNDER_WAY)


async def _schedule(
    sessions: Sessions,
    cadence: Cadence,
    lead_id: int,
    sequence: str,
    *,
    now: datetime,
    stage: str,
) -> str | None:
    async with sessions.begin() as session:
        if not await _locked_without_open_touch(session, lead_id, stage):
            return None  # a turn or a rep acted meanwhile
        inserted = await start_sequence(session, lead_id, sequence, cadence=cadence, now=now)
    if not inserted:  # this (sequence, cycle) ran before: nothing new can be scheduled
        log.warning("lead %s: sequence %s already ran; not repaired", lead_id, sequence)
        return "unrepaired"
    log.warning("lead %s (%s) had no next step: scheduled %s", lead_id, stage, sequence)
    return "scheduled"


async def _dormant(
    sessions: Sessions,
    lead_id: int,
    run: _Run,
    after_last: timedelta,
    now: datetime,
) -> str | None:
    try:
        async with sessions.begin() as session:
            if not await _locked_without_open_touch(session, lead_id, Stage.CONTACTED.value):
                return None
            await transition(
                session,
                lead_id,
                Stage.DORMANT,
                actor="scheduler",
                now=now,
                expected_from=Stage.CONTACTED,
                reason=f"no reply after the {run.sequence} cadence ran out "
                f"({after_last} ago or more)",
            )
    except StoreError as exc:  # moved meanwhile: theirs stands
        log.info("lead %s not moved to dormant: %s", lead_id, exc)
        return None
    log.warning(
        "lead %s had no next step: its %s cadence ran out; moved to dormant", lead_id, run.sequence
    )
    return "dormant"


__all__ = ["OUTCOMES", "SCOPE", "NextStepConfig", "NextStepReport", "check_next_steps"]
