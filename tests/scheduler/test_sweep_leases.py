"""A long sweep keeps its own work (issue 12, item 5).

A sweep reads the clock per batch and renews its claims while drafting, so reapers running
meanwhile (touch claims and outbox sends, both with a 5-minute lease) take back nothing
of a sweep that is alive but slow. The clock is controlled: each draft and each send
"takes" minutes of it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from scheduler.followups.drafting import Draft, DraftContext, Drafter
from scheduler.followups.sweeper import Sweeper
from scheduler.followups.touches import start_sequence
from scheduler.store.models import OutboxItem, Touch, utcnow
from tests.scheduler.cadence_support import (
    NOW,
    RecordingChannel,
    Sessions,
    compressed,
    make_lead,
    make_sweeper,
)

LEASE = timedelta(minutes=5)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class SlowDrafter:
    """Each draft takes ``took`` of the clock; the touch reaper runs while it does."""

    def __init__(self, inner: Drafter, clock: Clock, took: timedelta) -> None:
        self.inner, self.clock, self.took = inner, clock, took
        self.needs_history = inner.needs_history
        self.sweeper: Sweeper | None = None
        self.reaped = 0

    async def draft(self, context: DraftContext) -> Draft:
        self.clock.at += self.took
        assert self.sweeper is not None
        returned, failed = await self.sweeper.reap(self.clock())
        self.reaped += returned + failed
        return await self.inner.draft(context)


def slow_sweeper(
    sessions: Sessions, tmp_path: Path, clock: Clock, took: timedelta, **config: Any
) -> tuple[Sweeper, SlowDrafter, RecordingChannel]:
    cadence = compressed(tmp_path)
    sweeper, channel = make_sweeper(
        sessions, cadence, clock=clock, concurrency=1, lease=LEASE, **config
    )
    drafter = SlowDrafter(sweeper.drafter, clock, took)
    sweeper.drafter = drafter
    drafter.sweeper = sweeper
    return sweeper, drafter, channel


async def due_leads(sessions: Sessions, sweeper: Sweeper, n: int, sequence: str) -> None:
    for i in range(n):
        lead_id = await make_lead(sessions, i, stage="contacted")
        async with sessions.begin() as session:
            await start_sequence(session, lead_id, sequence, cadence=sweeper.cadence, now=NOW)


async def test_a_batch_slower_than_the_lease_keeps_its_claims(
    sessions: Sessions, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    # Three drafts of two minutes: the batch takes longer than the 5-minute lease.
    sweeper, drafter, channel = slow_sweeper(
        sessions, tmp_path, clock, timedelta(minutes=2), batch=3, max_batches=1
    )
    await due_leads(sessions, sweeper, 3, "approved")  # one touch each, due at NOW

    result = await sweeper.sweep(clock())

    assert clock() - NOW > LEASE
    assert drafter.reaped == 0
    assert result.claimed == 3 and result.awaiting_approval == 3
    async with sessions() as session:
        touches = (await session.execute(select(Touch.status, Touch.attempts, Touch.draft))).all()
    assert [(t.status, t.attempts) for t in touches if t.draft] == [("awaiting_approval", 1)] * 3
    assert [t.status for t in touches if not t.draft] == ["pending"] * 3  # the 5s nudges


async def test_every_batch_claims_and_sends_at_its_own_time(
    sessions: Sessions, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    # Batches of one draft of two minutes: each batch is shorter than the lease, the sweep
    # is not. Stamped with the sweep's start time, the third batch's claim would be reaped
    # during its own draft, and its sends would look five minutes old when they leave.
    sweeper, drafter, channel = slow_sweeper(
        sessions, tmp_path, clock, timedelta(minutes=2), batch=1
    )
    await due_leads(sessions, sweeper, 4, "new_lead")  # first_reply (NOW) and day1 (+1s)

    result = await sweeper.sweep(clock())

    assert drafter.reaped == 0
    assert result.sent == result.claimed == len(channel.sent) == 10  # one per batch
    async with sessions() as session:
        touches = (await session.execute(select(Touch.status, Touch.attempts))).all()
        outbox = (await session.execute(select(OutboxItem.state, OutboxItem.updated_at))).all()
    assert {(t.status, t.attempts) for t in touches if t.status != "pending"} == {("sent", 1)}
    assert {o.state for o in outbox} == {"sent"}
    # The last batch was handed to the outbox at its own time, not at the sweep's start.
    assert max(o.updated_at for o in outbox) - NOW >= timedelta(minutes=14)


class WaitingDrafter:
    """One draft that takes longer than the whole lease, in real time; the reaper runs at
    its end. Waits for states (the claim renewed, the lease elapsed), not for fixed times."""

    def __init__(self, inner: Drafter, sessions: Sessions) -> None:
        self.inner, self.sessions = inner, sessions
        self.needs_history = inner.needs_history
        self.sweeper: Sweeper | None = None
        self.reaped = -1

    async def draft(self, context: DraftContext) -> Draft:
        assert self.sweeper is not None
        lease = self.sweeper.config.lease
        async with self.sessions() as session:
            claimed = await session.scalar(select(Touch.claimed_at))
        assert claimed is not None
        async with asyncio.timeout(10):
            while utcnow() - claimed < lease or await self._claimed_at() == claimed:
                await asyncio.sleep(lease.total_seconds() / 20)
        returned, failed = await self.sweeper.reap(utcnow())
        self.reaped = returned + failed
        return await self.inner.draft(context)

    async def _claimed_at(self) -> datetime | None:
        async with self.sessions() as session:
            return await session.scalar(select(Touch.claimed_at))


async def test_a_single_draft_slower_than_the_lease_keeps_its_claim(
    sessions: Sessions, tmp_path: Path
) -> None:
    cadence = compressed(tmp_path)
    lease = timedelta(seconds=0.4)
    sweeper, channel = make_sweeper(sessions, cadence, clock=utcnow, lease=lease, max_batches=1)
    drafter = WaitingDrafter(sweeper.drafter, sessions)
    sweeper.drafter = drafter
    drafter.sweeper = sweeper
    lead_id = await make_lead(sessions, stage="contacted")
    async with sessions.begin() as session:
        await start_sequence(session, lead_id, "approved", cadence=cadence, now=NOW)
    result = await sweeper.sweep(utcnow())
    assert drafter.reaped == 0  # the heartbeat renewed the claim while the draft ran
    assert result.awaiting_approval == 1
