"""Contact points (every way to reach a person, each owned by one lead), the identity audit
trail and the conflicts left for a human. The rules that choose a lead are
:mod:`scheduler.pipeline.identity`'s; these are its statements, on ``(kind, value)`` pairs.

Points are inserted in one order, ``(kind, value)``, by every writer: unique-index waits
between two transactions inserting the same points then cannot deadlock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import ContactPoint, IdentityConflict, IdentityEvent

_POINTS = cast(Table, ContactPoint.__table__)
_EVENTS = cast(Table, IdentityEvent.__table__)
_CONFLICTS = cast(Table, IdentityConflict.__table__)
# How the inbox keys a username-only WhatsApp sender: "bsuid:<id>" (a phone sender is "+<wa_id>").
BSUID_SENDER = "bsuid:"


class Kind(StrEnum):
    """The kinds of contact point, strongest first for choosing a lead."""

    EMAIL = "email"
    BSUID = "bsuid"
    WHATSAPP = "whatsapp"
    PHONE = "phone"


async def owners(
    session: AsyncSession, values_by_kind: Mapping[str, set[str]]
) -> list[tuple[str, str, int]]:
    """``(kind, value, lead id)`` of the stored points among ``values_by_kind``."""
    # Kind first: the (kind, value) unique index serves each branch.
    rows = await session.execute(
        select(ContactPoint.kind, ContactPoint.value, ContactPoint.lead_id).where(
            or_(
                *(
                    and_(ContactPoint.kind == kind, ContactPoint.value.in_(values))
                    for kind, values in values_by_kind.items()
                )
            )
        )
    )
    return [(str(kind), str(value), int(lead_id)) for kind, value, lead_id in rows]


async def add_points(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str]]:
    """Insert points (``lead_id``, ``kind``, ``value``, ``created_at``; already in
    ``(kind, value)`` order); those another lead holds are left alone. Returns the
    ``(kind, value)`` of the rows inserted."""
    statement = insert_or_ignore(
        session, _POINTS, ["kind", "value"], returning=(_POINTS.c.kind, _POINTS.c.value)
    )
    inserted = await session.execute(statement, rows)  # RETURNING: the rows inserted
    return [(str(k), str(v)) for k, v in inserted.all()]


async def add_new_points(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> int:
    """Like :func:`add_points`; returns only how many were inserted."""
    add = insert_or_ignore(session, _POINTS, ["kind", "value"], returning=(_POINTS.c.id,))
    result = await session.execute(add, rows)
    return len(result.all())


async def record_events(session: AsyncSession, events: Sequence[Mapping[str, Any]]) -> None:
    """Append identity audit rows (``lead_id``, ``action``, ``kind``, ``value``, ``actor``,
    ``reason``, ``at``)."""
    if events:
        await session.execute(insert(_EVENTS), events)


async def add_conflicts(
    session: AsyncSession, rows: Sequence[Mapping[str, Any]]
) -> set[tuple[int, str, str]]:
    """Insert conflict rows; one recorded before is left alone. Returns the
    ``(other lead id, kind, value)`` of the rows inserted."""
    statement = insert_or_ignore(
        session,
        _CONFLICTS,
        ["lead_id", "other_lead_id", "kind", "value"],
        returning=(_CONFLICTS.c.other_lead_id, _CONFLICTS.c.kind, _CONFLICTS.c.value),
    )
    inserted: Any = (await session.execute(statement, rows)).all()
    return {(o, k, v) for o, k, v in inserted}


async def points_of_lead(session: AsyncSession, lead_id: int) -> list[tuple[str, str]]:
    """The lead's ``(kind, value)`` points, oldest first."""
    rows = await session.execute(
        select(ContactPoint.kind, ContactPoint.value)
        .where(ContactPoint.lead_id == lead_id)
        .order_by(ContactPoint.id)
    )
    return [(str(k), str(v)) for k, v in rows]


async def points_of_leads(
    session: AsyncSession, lead_ids: Iterable[int], kinds: Sequence[str]
) -> list[tuple[int, str, str]]:
    """``(lead id, kind, value)`` of the leads' points of ``kinds``, oldest first."""
    rows = await session.execute(
        select(ContactPoint.lead_id, ContactPoint.kind, ContactPoint.value)
        .where(ContactPoint.lead_id.in_(set(lead_ids)), ContactPoint.kind.in_(kinds))
        .order_by(ContactPoint.id)
    )
    return [(int(lead_id), str(kind), str(value)) for lead_id, kind, value in rows]


async def remove_points(session: AsyncSession, lead_id: int, kinds: Sequence[str]) -> None:
    """Delete the lead's points of ``kinds``."""
    await session.execute(
        delete(ContactPoint).where(ContactPoint.lead_id == lead_id, ContactPoint.kind.in_(kinds))
    )
