"""What the HubSpot sync reads and records (``hubspot_links``, ``hubspot_notes``).

The sync channel (:mod:`crm_sync.hubspot.channel`) reads each lead's *current* state at send
time (:func:`snapshots`), so a retried or late row pushes what is true now, not what was
true when the row was stored. It records the contact and deal ids HubSpot answered
(:func:`record_links`; the inbound webhook maps a deal back to its lead with
:func:`lead_of_deal`) and each note it pushes by a deterministic key (:func:`start_notes`,
:func:`finish_notes`), so a retry never creates a twin note.

Erasure leaves both tables alone: they hold HubSpot's ids and our note keys, nothing about
the person, and they keep each push at most once (as the outbox's keys do).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import HubSpotLink, HubSpotNote, Lead, LeadNote, Message, Rep

SYNCED_NOTE_KINDS = ("note", "email", "form")
"""The kinds of lead notes pushed to HubSpot (what people and prospects wrote; not the
console's own bookkeeping such as owner changes)."""
_CHUNK = 500


@dataclass(slots=True)
class SyncLead:
    """A lead as the sync pushes it: its fields, its owner's email, what HubSpot ids we
    know, and its lead notes (oldest first)."""

    id: int
    name: str | None
    email: str | None
    phone: str | None
    company: str | None
    role: str | None
    source: str | None
    stage: str
    lost_reason: str | None
    qualification: dict[str, Any] | None
    owner_email: str | None
    erased: bool
    created_at: datetime
    contact_id: str | None = None
    deal_id: str | None = None
    # (note id, kind, body, written at, structured fields: an email note's summary, budget...)
    notes: list[tuple[int, str, str, datetime, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PushedNote:
    """Our record of one note: when its create was first tried, HubSpot's id once known."""

    started_at: datetime
    hubspot_id: str | None


async def snapshots(session: AsyncSession, lead_ids: Iterable[int]) -> dict[int, SyncLead]:
    """The current state of each of ``lead_ids`` that exists (missing ones are left out)."""
    wanted = sorted(set(lead_ids))
    found: dict[int, SyncLead] = {}
    for first in range(0, len(wanted), _CHUNK):
        ids = wanted[first : first + _CHUNK]
        rows = await session.execute(
            select(Lead, Rep.email, HubSpotLink.contact_id, HubSpotLink.deal_id)
            .outerjoin(Rep, Rep.id == Lead.owner_rep_id)
            .outerjoin(HubSpotLink, HubSpotLink.lead_id == Lead.id)
            .where(Lead.id.in_(ids))
        )
        for lead, owner_email, contact_id, deal_id in rows:
            found[lead.id] = SyncLead(
                id=lead.id,
                name=lead.name,
                email=lead.email,
                phone=lead.phone,
                company=lead.company,
                role=lead.role,
                source=lead.source,
                stage=lead.stage,
                lost_reason=lead.lost_reason,
                qualification=lead.qualification,
                owner_email=owner_email,
                erased=lead.erased_at is not None,
                created_at=lead.created_at,
                contact_id=contact_id,
                deal_id=deal_id,
            )
        notes = await session.execute(
            select(
                LeadNote.lead_id,
                LeadNote.id,
                LeadNote.kind,
                LeadNote.body,
                LeadNote.created_at,
                LeadNote.data,
            )
            .where(LeadNote.lead_id.in_(ids), LeadNote.kind.in_(SYNCED_NOTE_KINDS))
            .order_by(LeadNote.id)
        )
        for row in notes:
            note = (row.id, row.kind, row.body, row.created_at, row.data or {})
            found[row.lead_id].notes.append(note)
    return found


async def conversation(
    session: AsyncSession, lead_id: int, *, limit: int = 20
) -> list[tuple[str, str, datetime]]:
    """The lead's last ``limit`` messages as ``(direction, body, at)``, oldest first."""
    rows = await session.execute(
        select(Message.direction, Message.body, Message.created_at)
        .where(Message.lead_id == lead_id)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    return [(d, b, at) for d, b, at in reversed(rows.all())]


async def record_links(
    session: AsyncSession, links: Sequence[tuple[int, str | None, str | None]], now: datetime
) -> None:
    """Store ``(lead_id, contact_id, deal_id)`` as each lead's HubSpot ids (a None keeps
    what was known)."""
    if not links:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    insert = pg_insert if postgres else sqlite_insert
    for lead_id, contact_id, deal_id in links:
        statement = insert(HubSpotLink).values(
            lead_id=lead_id, contact_id=contact_id, deal_id=deal_id, synced_at=now
        )
        changes: dict[str, Any] = {"synced_at": now}
        if contact_id is not None:
            changes["contact_id"] = contact_id
        if deal_id is not None:
            changes["deal_id"] = deal_id
        await session.execute(
            statement.on_conflict_do_update(index_elements=["lead_id"], set_=changes)
        )


async def lead_of_deal(session: AsyncSession, deal_id: str) -> tuple[int, bool] | None:
    """The lead mirrored to HubSpot deal ``deal_id`` and whether it was erased, or None."""
    row = (
        await session.execute(
            select(HubSpotLink.lead_id, Lead.erased_at)
            .join(Lead, Lead.id == HubSpotLink.lead_id)
            .where(HubSpotLink.deal_id == deal_id)
        )
    ).one_or_none()
    return (int(row[0]), row[1] is not None) if row is not None else None


async def start_notes(
    session: AsyncSession, lead_id: int, keys: Sequence[str], now: datetime
) -> dict[str, PushedNote]:
    """Mark the notes ``keys`` of ``lead_id`` as being created (those not marked before);
    every key's record as it stands afterwards."""
    if not keys:
        return {}
    rows = [{"lead_id": lead_id, "note_key": k, "started_at": now} for k in keys]
    await session.execute(
        insert_or_ignore(session, HubSpotNote, ["lead_id", "note_key"]).values(rows)
    )
    found = await session.execute(
        select(HubSpotNote.note_key, HubSpotNote.started_at, HubSpotNote.hubspot_id).where(
            HubSpotNote.lead_id == lead_id, HubSpotNote.note_key.in_(list(keys))
        )
    )
    return {key: PushedNote(at, hubspot_id) for key, at, hubspot_id in found}


async def pushed_notes(
    session: AsyncSession, lead_ids: Sequence[int]
) -> dict[tuple[int, str], PushedNote]:
    """Every note of ``lead_ids`` we marked, by ``(lead_id, note_key)``."""
    found: dict[tuple[int, str], PushedNote] = {}
    wanted = sorted(set(lead_ids))
    for first in range(0, len(wanted), _CHUNK):
        rows = await session.execute(
            select(
                HubSpotNote.lead_id,
                HubSpotNote.note_key,
                HubSpotNote.started_at,
                HubSpotNote.hubspot_id,
            ).where(HubSpotNote.lead_id.in_(wanted[first : first + _CHUNK]))
        )
        found.update({(lead, key): PushedNote(at, note) for lead, key, at, note in rows})
    return found


async def finish_notes(session: AsyncSession, notes: Sequence[tuple[int, str, str]]) -> None:
    """Record HubSpot's id of each ``(lead_id, note_key, hubspot_id)``."""
    for lead_id, key, hubspot_id in notes:
        await session.execute(
            update(HubSpotNote)
            .where(HubSpotNote.lead_id == lead_id, HubSpotNote.note_key == key)
            .values(hubspot_id=hubspot_id)
        )


async def unmark_notes(session: AsyncSession, notes: Sequence[tuple[int, str]]) -> None:
    """Forget the marks of ``(lead_id, note_key)`` whose create surely did not happen (held
    back, throttled): their next try creates them without a search first."""
    for lead_id, key in notes:
        await session.execute(
            delete(HubSpotNote).where(
                HubSpotNote.lead_id == lead_id,
                HubSpotNote.note_key == key,
                HubSpotNote.hubspot_id.is_(None),
            )
        )


async def lead_ids_after(session: AsyncSession, after_id: int, limit: int) -> list[int]:
    """Up to ``limit`` ids of leads not erased, above ``after_id``, ascending (a keyset page:
    the backfill walks every lead with flat memory)."""
    rows = await session.scalars(
        select(Lead.id)
        .where(Lead.id > after_id, Lead.erased_at.is_(None))
        .order_by(Lead.id)
        .limit(limit)
    )
    return list(rows)


async def count_leads(session: AsyncSession) -> int:
    """How many leads are not erased (the backfill's total)."""
    return int(await session.scalar(select(func.count()).where(Lead.erased_at.is_(None))) or 0)
