"""How each arm of each A/B experiment did: conversations assigned, qualified, booked.

One aggregate query over the conversations that are in an experiment (the partial index
``ix_dialog_sessions_experiment`` holds only those), grouped by script, experiment and
variant in SQL: the work is the database's and the answer is one row per arm, at a million
leads as at ten. A lead counts as

- *assigned* when its dialog session carries the variant (set when the conversation started);
- *qualified* when its stage is ``qualified`` or further along (``proposal_sent``, ``won``);
- *booked* when it has a booking that is not canceled (table ``bookings``, from Calendly).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.stage_names import Stage
from scheduler.store.models import Booking, DialogSessionRow, Lead

QUALIFIED_STAGES = (Stage.QUALIFIED.value, Stage.PROPOSAL_SENT.value, Stage.WON.value)


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """One variant of one experiment of one script, counted."""

    script_id: str
    experiment: str
    variant: str
    assigned: int
    qualified: int
    booked: int


def _query(script_id: str | None) -> Select[str, str, str, int, int, int]:
    ds = DialogSessionRow
    # Both as IN over a set built once (SQLite: an in-memory list from a covering index,
    # Postgres: a hashed subplan), not a join to ``leads`` per row: measured twice as fast
    # on SQLite, where reading each wide lead row dominated (bench/bench_experiments.py).
    qualified = select(Lead.id).where(Lead.stage.in_(QUALIFIED_STAGES))
    booked = select(Booking.lead_id).where(
        Booking.status != "canceled", Booking.lead_id.is_not(None)
    )
    query = (
        select(
            ds.script_id,
            ds.experiment,
            ds.variant,
            func.count(),
            func.coalesce(func.sum(case((ds.lead_id.in_(qualified), 1), else_=0)), 0),
            func.coalesce(func.sum(case((ds.lead_id.in_(booked), 1), else_=0)), 0),
        )
        .where(ds.experiment.is_not(None), ds.variant.is_not(None))
        .group_by(ds.script_id, ds.experiment, ds.variant)
        .order_by(ds.script_id, ds.experiment, ds.variant)
    )
    if script_id is not None:
        query = query.where(ds.script_id == script_id)
    return query


async def arm_counts(session: AsyncSession, script_id: str | None = None) -> list[ArmCounts]:
    """Every arm of every experiment (of ``script_id`` only, when given), counted; ordered by
    script, experiment and variant."""
    rows = await session.execute(_query(script_id))
    return [
        ArmCounts(
            script_id=row[0],
            experiment=row[1],
            variant=row[2],
            assigned=int(row[3]),
            qualified=int(row[4]),
            booked=int(row[5]),
        )
        for row in rows
    ]
