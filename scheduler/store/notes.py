"""Notes on a lead's timeline (``lead_notes``): what a console user wrote about the lead,
and the record of the console's own actions on it that have no audit table of their own
(owner changed, bot paused or resumed, marked opted out).

A note is only ever added (never edited): it is part of the lead's history. An erasure
deletes them with the rest of the person's data (:mod:`scheduler.store.erasure`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import LeadNote

_NOTES = cast(Table, LeadNote.__table__)
_ADD = insert(_NOTES).returning(_NOTES.c.id)


class NoteKind(StrEnum):
    """What a note records."""

    NOTE = "note"  # typed by a console user
    EMAIL = "email"  # facts extracted from an email
    FORM = "form"  # what the prospect wrote in a form (message, answers per question)
    OWNER = "owner"  # the owner was changed in the console
    BOT_PAUSED = "bot_paused"
    BOT_RESUMED = "bot_resumed"
    OPTED_OUT = "opted_out"  # marked opted out in the console


async def add_note(
    session: AsyncSession,
    lead_id: int,
    *,
    kind: NoteKind | str,
    author: str,
    body: str,
    now: datetime,
    data: dict[str, Any] | None = None,
) -> int:
    """Add a note to the lead's timeline in the caller's transaction; its id."""
    values = {
        "lead_id": lead_id,
        "kind": str(kind),
        "author": author[:320],
        "body": body,
        "data": data or {},
        "created_at": now,
    }
    note_id: int = await session.scalar(_ADD, values)
    return note_id


async def list_notes(
    session: AsyncSession, lead_id: int, *, limit: int = 100, kind: NoteKind | None = None
) -> list[LeadNote]:
    """The lead's newest ``limit`` notes (only those of ``kind`` if given), newest first."""
    where = [LeadNote.lead_id == lead_id]
    if kind is not None:
        where.append(LeadNote.kind == str(kind))
    query = (
        select(LeadNote)
        .where(*where)
        .order_by(LeadNote.created_at.desc(), LeadNote.id.desc())
        .limit(limit)
    )
    return list(await session.scalars(query))
