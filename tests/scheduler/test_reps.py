"""Round-robin ownership on every backend: fair order, one owner per lead, safe under races."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.errors import InvalidLeadError, NotFoundError
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead
from scheduler.store.reps import add_rep, assign_owner, deactivate_rep, list_reps

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]


async def make_reps(sessions: Sessions, *names: str) -> list[int]:
    async with sessions.begin() as session:
        reps = [
            await add_rep(session, name=n, email=f"{n.lower()}@seller.com", whatsapp=None, now=NOW)
            for n in names
        ]
    return [rep.id for rep in reps]


async def make_leads(sessions: Sessions, count: int) -> list[int]:
    async with sessions.begin() as session:
        leads = [
            (
                await intake(session, LeadIn(email=f"p{i}@acme.com"), default_region="US", now=NOW)
            ).lead
            for i in range(count)
        ]
    return [lead.id for lead in leads]


async def assign(sessions: Sessions, lead_id: int, now: datetime = NOW) -> int | None:
    async with sessions.begin() as session:
        rep = await assign_owner(session, lead_id, now=now)
    return rep.id if rep else None


async def test_leads_go_to_active_reps_in_turn(sessions: Sessions) -> None:
    ana, ben, cy = await make_reps(sessions, "Ana", "Ben", "Cy")
    leads = await make_leads(sessions, 6)

    owners = [
        await assign(sessions, lead, NOW + timedelta(seconds=i)) for i, lead in enumerate(leads)
    ]

    assert owners == [ana, ben, cy, ana, ben, cy]


async def test_a_lead_keeps_its_owner(sessions: Sessions) -> None:
    ana, _ = await make_reps(sessions, "Ana", "Ben")
    [lead] = await make_leads(sessions, 1)

    assert await assign(sessions, lead) == ana
    assert await assign(sessions, lead, NOW + timedelta(1)) == ana


async def test_inactive_reps_get_nothing_and_lose_their_leads_when_next_needed(
    sessions: Sessions,
) -> None:
    ana, ben = await make_reps(sessions, "Ana", "Ben")
    first, second, third = await make_leads(sessions, 3)
    assert await assign(sessions, first) == ana
    async with sessions.begin() as session:
        await deactivate_rep(session, ana)

    assert await assign(sessions, second, NOW + timedelta(1)) == ben
    assert await assign(sessions, first, NOW + timedelta(2)) == ben
    async with sessions.begin() as session:
        await deactivate_rep(session, ben)
    assert await assign(sessions, third, NOW + timedelta(3)) is None
    async with sessions() as session:
        assert [r.active for r in await list_reps(session)] == [False, False]
        assert await list_reps(session, active_only=True) == []


async def test_concurrent_assignments_give_one_owner_per_lead_and_spread_evenly(
    sessions: Sessions,
) -> None:
    reps = await make_reps(sessions, "Ana", "Ben", "Cy", "Di")
    leads = await make_leads(sessions, 20)

    # Each lead is assigned by two racing callers.
    results = await asyncio.gather(*(assign(sessions, lead) for lead in leads + leads))

    by_lead = dict(zip(leads + leads, results, strict=True))
    assert all(results[i] == results[i + 20] for i in range(20))
    async with sessions() as session:
        owners = [(await session.get(Lead, lead)).owner_rep_id for lead in leads]  # type: ignore[union-attr]
    assert owners == [by_lead[lead] for lead in leads]
    assert Counter(owners) == Counter({rep: 5 for rep in reps})


async def test_rep_errors_are_clear(sessions: Sessions) -> None:
    await make_reps(sessions, "Ana")
    async with sessions() as session:
        with pytest.raises(InvalidLeadError, match="exists already"):
            await add_rep(session, name="Ana 2", email="ana@seller.com", whatsapp=None, now=NOW)
        with pytest.raises(NotFoundError):
            await deactivate_rep(session, 999)
        with pytest.raises(NotFoundError):
            await assign_owner(session, 999, now=NOW)
