"""A lead's conversation: its messages (either direction, any channel) and the dialog
engine's session, stored as JSON with its script id and version."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import DialogSessionRow, Lead, Message

_MESSAGES = cast(Table, Message.__table__)
# Built once, run with parameters (building statements costs more than running them).
_WITH_STATE = (
    select(Lead, DialogSessionRow.state)
    .outerjoin(DialogSessionRow, DialogSessionRow.lead_id == Lead.id)
    .where(Lead.id.in_(bindparam("ids", expanding=True)))
)


async def leads_with_state(
    session: AsyncSession, lead_ids: Iterable[int]
) -> list[tuple[Lead, dict[str, Any] | None]]:
    """The leads ``lead_ids`` (those that exist), each with its stored dialog state (None
    when it has none), in one query."""
    found = await session.execute(_WITH_STATE, {"ids": list(lead_ids)})
    return [(row.Lead, row.state) for row in found]


async def record_messages(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store messages (column values) in one statement; one whose ``external_id`` is
    stored already is left as it is."""
    if rows:
        await session.execute(insert_or_ignore(session, _MESSAGES, ["external_id"]), rows)


def add_message(session: AsyncSession, **values: Any) -> Message:
    """Add one message to the caller's transaction (written with its next flush)."""
    message = Message(**values)
    session.add(message)
    return message


async def dialog_states(
    session: AsyncSession, lead_ids: Iterable[int]
) -> list[tuple[int, dict[str, Any] | None]]:
    """``(lead id, stored dialog state)`` of the leads among ``lead_ids`` that have one."""
    rows = await session.execute(
        select(DialogSessionRow.lead_id, DialogSessionRow.state).where(
            DialogSessionRow.lead_id.in_(lead_ids)
        )
    )
    return [(row.lead_id, row.state) for row in rows]


async def recent_messages(
    session: AsyncSession, lead_id: int, limit: int
) -> list[tuple[str, str]]:
    """``(direction, body)`` of the lead's last ``limit`` messages, newest first."""
    messages = await session.execute(
        select(Message.direction, Message.body)
        .where(Message.lead_id == lead_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return [(d, b) for d, b in messages]


async def lead_of_messages(session: AsyncSession, external_ids: Sequence[str]) -> int | None:
    """The lead of one of the messages with these ids (a Message-ID a reply refers to)."""
    lead_id: int | None = await session.scalar(
        select(Message.lead_id).where(Message.external_id.in_(external_ids)).limit(1)
    )
    return lead_id


async def save_sessions(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store dialog sessions (``lead_id``, ``script_id``, ``script_version``, ``state``,
    ``updated_at``) in one statement: an upsert, with no read of the rows it overwrites.
    The state's A/B ``experiment`` and ``variant`` are copied to their indexed columns."""
    if rows:
        rows = [_with_experiment(row) for row in rows]
        await session.execute(_session_upsert(session.get_bind().dialect.name), rows)


def _with_experiment(row: Mapping[str, Any]) -> dict[str, Any]:
    state = row.get("state") or {}
    return {**row, "experiment": state.get("experiment"), "variant": state.get("variant")}


@functools.cache
def _session_upsert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """The dialog-session upsert, built once per backend and run with parameters."""
    table = cast(Table, DialogSessionRow.__table__)
    statement = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    changed = {
        c: statement.excluded[c]
        for c in ("script_id", "script_version", "state", "updated_at", "experiment", "variant")
    }
    return statement.on_conflict_do_update(index_elements=["lead_id"], set_=changed)
