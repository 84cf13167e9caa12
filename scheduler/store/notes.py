"""Notes on a lead's timeline (``lead_notes``): what a console user wrote about the lead,
the record of the console's own actions on it that have no audit table of their own
(owner changed, bot paused or resumed, marked opted out), and the structured notes read
from the lead's email replies (with the reads :mod:`scheduler.intake.email_notes` needs:
one reply, and the recent replies without their note).

A note is only ever added (never edited): it is part of the lead's history. An erasure
deletes them with the rest of the person's data (:mod:`scheduler.store.erasure`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import String, Table, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import LeadNote, Message, ProcessedEvent

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


async def email_reply(session: AsyncSession, message_id: int) -> Message | None:
    """The inbound email message ``message_id``, or None (another kind, or gone: erased)."""
    message: Message | None = await session.scalar(
        select(Message).where(
            Message.id == message_id, Message.channel == "email", Message.direction == "in"
        )
    )
    return message


async def reply_noted(session: AsyncSession, done: str, message_id: int) -> bool:
    """Whether the reply ``message_id`` is recorded as read (``processed_events`` row
    ``(done, "<message id>")``)."""
    found = await session.scalar(
        select(ProcessedEvent.id).where(
            ProcessedEvent.source == done, ProcessedEvent.key == str(message_id)
        )
    )
    return found is not None


async def unnoted_email_replies(
    session: AsyncSession, *, done: str, since: datetime, after_id: int = 0, limit: int = 100
) -> list[int]:
    """Ids of inbound email messages stored at or after ``since`` (and after ``after_id``)
    with no ``processed_events`` row ``(done, "<message id>")``, ascending, at most ``limit``.

    Walks the messages' primary key from ``after_id``; ``since`` keeps the walk to recent
    replies (those before the feature existed are not read into notes on upgrade)."""
    noted = select(ProcessedEvent.id).where(
        ProcessedEvent.source == done, ProcessedEvent.key == sql_cast(Message.id, String)
    )
    rows = await session.scalars(
        select(Message.id)
        .where(
            Message.id > after_id,
            Message.channel == "email",
            Message.direction == "in",
            Message.created_at >= since,
            ~noted.exists(),
        )
        .order_by(Message.id)
        .limit(limit)
    )
    return list(rows)
