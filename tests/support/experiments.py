"""Seeding A/B experiment results into a store: leads, their dialog sessions on a variant,
their stages and bookings, written in bulk (the tests of the report, its CLI and its page)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.store.conversations import save_sessions
from scheduler.store.models import Booking, Lead

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
_ids = count(1)


@dataclass(frozen=True, slots=True)
class Arm:
    """How many leads of one variant to make, and how many of them qualified and booked."""

    variant: str
    assigned: int
    qualified: int
    booked: int


async def seed_arms(
    sessions: async_sessionmaker[AsyncSession],
    arms: Sequence[Arm],
    *,
    script_id: str = "b2b_default",
    experiment: str | None = "greeting-test-1",
) -> list[int]:
    """Make the leads of ``arms`` (``experiment`` None: conversations in no experiment);
    their ids. The first ``qualified`` of an arm are in stage ``qualified`` (one of them
    ``won``), the first ``booked`` have an active booking."""
    leads: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    bookings: list[dict[str, Any]] = []
    for arm in arms:
        for i in range(arm.assigned):
            n = next(_ids)
            stage = "new"
            if i < arm.qualified:
                stage = "won" if i == 0 else "qualified"
            leads.append(
                {
                    "token": f"tok{n:012d}",
                    "phone": f"+1415{n:07d}",
                    "stage": stage,
                    "attribution": {},
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            states.append(
                {"experiment": experiment, "variant": arm.variant, "booked": i < arm.booked}
            )
    async with sessions.begin() as db:
        ids = list(
            (
                await db.execute(
                    insert(Lead).returning(Lead.id, sort_by_parameter_order=True), leads
                )
            ).scalars()
        )
        for lead_id, state in zip(ids, states, strict=True):
            if state.pop("booked"):
                bookings.append(
                    {
                        "lead_id": lead_id,
                        "invitee_uri": f"https://api.calendly.com/invitees/{lead_id}",
                        "status": "active",
                        "payload": {},
                        "created_at": NOW,
                    }
                )
        rows = [
            {
                "lead_id": lead_id,
                "script_id": script_id,
                "script_version": "2026-12",
                "state": {"script_id": script_id, **state},
                "updated_at": NOW,
            }
            for lead_id, state in zip(ids, states, strict=True)
        ]
        await save_sessions(db, rows)
        if bookings:
            await db.execute(insert(Booking), bookings)
    return ids


async def add_booking(
    sessions: async_sessionmaker[AsyncSession], lead_id: int, *, status: str, uri: str
) -> None:
    """One more booking of ``lead_id`` (``status`` active or canceled)."""
    async with sessions.begin() as db:
        await db.execute(
            insert(Booking),
            [
                {
                    "lead_id": lead_id,
                    "invitee_uri": uri,
                    "status": status,
                    "payload": {},
                    "created_at": NOW,
                }
            ],
        )
