"""The stage machine on every backend: the table of moves, reasons, staleness, races."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import (
    IllegalTransitionError,
    NotFoundError,
    ReasonRequiredError,
    StaleStageError,
    TransitionError,
)
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.pipeline.stages import ALLOWED_MOVES, transition
from scheduler.store.models import Lead, Stage, StageEvent

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]

EXPECTED_MOVES = {
    ("new", "contacted"),
    ("new", "lost"),
    ("contacted", "qualified"),
    ("contacted", "lost"),
    ("contacted", "dormant"),
    ("qualified", "proposal_sent"),
    ("qualified", "lost"),
    ("qualified", "dormant"),
    ("proposal_sent", "won"),
    ("proposal_sent", "lost"),
    ("proposal_sent", "dormant"),
    ("dormant", "contacted"),
    ("dormant", "lost"),
    ("lost", "contacted"),
}


async def new_lead(sessions: Sessions, email: str = "dana@example.com") -> int:
    async with sessions.begin() as session:
        result = await intake(session, LeadIn(email=email), default_region="US", now=NOW)
    return result.lead.id


async def force_stage(sessions: Sessions, lead_id: int, stage: Stage) -> None:
    """Put a lead in a stage directly (test setup only: bypasses the machine on purpose)."""
    async with sessions.begin() as session:
        await session.execute(update(Lead).where(Lead.id == lead_id).values(stage=stage.value))


async def audit(sessions: Sessions, lead_id: int) -> list[tuple[str | None, str]]:
    async with sessions() as session:
        rows = await session.execute(
            select(StageEvent.from_stage, StageEvent.to_stage)
            .where(StageEvent.lead_id == lead_id)
            .order_by(StageEvent.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_allowed_moves_table_is_the_playbook() -> None:
    table = {(a.value, b.value) for a, targets in ALLOWED_MOVES.items() for b in targets}
    assert table == EXPECTED_MOVES
    assert ALLOWED_MOVES[Stage.WON] == frozenset()


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Stage, Stage)))
async def test_every_pair_applies_or_is_refused(
    sessions: Sessions, source: Stage, target: Stage
) -> None:
    lead_id = await new_lead(sessions)
    await force_stage(sessions, lead_id, source)
    before = await audit(sessions, lead_id)
    reason = "budget too small"
    if (source.value, target.value) in EXPECTED_MOVES:
        async with sessions.begin() as session:
            event = await transition(
                session, lead_id, target, reason=reason, actor="rep:ana", now=NOW
            )
        assert (event.from_stage, event.to_stage) == (source.value, target.value)
        assert await audit(sessions, lead_id) == [*before, (source.value, target.value)]
        async with sessions() as session:
            lead = await session.get(Lead, lead_id)
            assert lead is not None
            assert lead.stage == target.value
            assert lead.version == 2
            assert lead.lost_reason == (reason if target is Stage.LOST else None)
    else:
        with pytest.raises(IllegalTransitionError) as raised:
            async with sessions.begin() as session:
                await transition(session, lead_id, target, reason=reason, actor="t", now=NOW)
        assert f"from {source} to {target}" in raised.value.message
        assert await audit(sessions, lead_id) == before


@pytest.mark.parametrize("reason", [None, "", "   "])
async def test_lost_needs_a_reason(sessions: Sessions, reason: str | None) -> None:
    lead_id = await new_lead(sessions)
    with pytest.raises(ReasonRequiredError, match="needs a reason"):
        async with sessions.begin() as session:
            await transition(session, lead_id, Stage.LOST, reason=reason, actor="t", now=NOW)
    assert await audit(sessions, lead_id) == [(None, "new")]


async def test_reopening_a_lost_lead_needs_a_reason_and_clears_it(sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)
    async with sessions.begin() as session:
        await transition(session, lead_id, "lost", reason="no budget", actor="t", now=NOW)
    with pytest.raises(ReasonRequiredError, match="reopening"):
        async with sessions.begin() as session:
            await transition(session, lead_id, "contacted", reason=None, actor="t", now=NOW)
    async with sessions.begin() as session:
        await transition(
            session, lead_id, "contacted", reason="budget approved", actor="t", now=NOW
        )
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        assert (lead.stage, lead.lost_reason) == ("contacted", None)


async def test_won_is_final(sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)
    await force_stage(sessions, lead_id, Stage.WON)
    for target in Stage:
        with pytest.raises(IllegalTransitionError, match="final stage"):
            async with sessions.begin() as session:
                await transition(session, lead_id, target, reason="x", actor="t", now=NOW)


async def test_stale_expected_stage_is_refused(sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)
    with pytest.raises(StaleStageError, match="is new, not contacted"):
        async with sessions.begin() as session:
            await transition(
                session,
                lead_id,
                "qualified",
                reason=None,
                actor="t",
                now=NOW,
                expected_from="contacted",
            )


async def test_unknown_lead(sessions: Sessions) -> None:
    with pytest.raises(NotFoundError):
        async with sessions.begin() as session:
            await transition(session, 424242, "contacted", reason=None, actor="t", now=NOW)


async def test_racing_moves_from_one_stage_apply_once(sessions: Sessions) -> None:
    """20 concurrent moves of one lead, each computed from 'contacted': exactly one applies,
    and the audit log holds exactly that move."""
    lead_id = await new_lead(sessions)
    await force_stage(sessions, lead_id, Stage.CONTACTED)
    targets = [Stage.QUALIFIED, Stage.LOST, Stage.DORMANT] * 7

    async def move(target: Stage) -> Stage | TransitionError:
        try:
            async with sessions.begin() as session:
                await transition(
                    session,
                    lead_id,
                    target,
                    reason="race",
                    actor="t",
                    now=NOW,
                    expected_from=Stage.CONTACTED,
                )
        except TransitionError as exc:
            return exc
        return target

    results = await asyncio.gather(*(move(t) for t in targets[:20]))
    applied = [r for r in results if isinstance(r, Stage)]
    assert len(applied) == 1
    assert all(isinstance(r, StaleStageError) for r in results if not isinstance(r, Stage))
    assert await audit(sessions, lead_id) == [(None, "new"), ("contacted", applied[0].value)]
    async with sessions() as session:
        lead = await session.get(Lead, lead_id)
        assert lead is not None
        assert (lead.stage, lead.version) == (applied[0].value, 2)


async def test_racing_identical_moves_without_expectation_apply_once(sessions: Sessions) -> None:
    lead_id = await new_lead(sessions)

    async def move() -> bool:
        try:
            async with sessions.begin() as session:
                await transition(session, lead_id, "contacted", reason=None, actor="t", now=NOW)
        except TransitionError:
            return False
        return True

    results = await asyncio.gather(*(move() for _ in range(20)))
    assert results.count(True) == 1
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(StageEvent).where(StageEvent.lead_id == lead_id)
        )
    assert count == 2  # creation + the one move
