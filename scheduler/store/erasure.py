"""Erasure: forget a person on request, keeping only an anonymous stage history.

:func:`erase_lead` runs in the caller's transaction and follows THE ONE LOCK ORDER: the
lead row first (locked, then its personal fields cleared), then :data:`STEPS`, one per table
in the order the lock order gives (touches, outbox, then the rest), each taking its rows in
ascending id. What each step does:

- ``touches``: open ones (pending, claimed, awaiting approval) cancelled; drafts, notes and
  draft metadata of all of them cleared.
- ``outbox``: the lead's rows, the rep notifications about the lead (key
  ``rep:…:lead:<id>:…``), the outbound events and CRM syncs about it (key ``…:lead:<id>:…``):
  pending ones cancelled (``failed``, "lead erased"); every payload and error cleared; the
  prospect's address replaced where it was the recipient.
  Keys, states and provider ids stay (they keep each intent at most once).
- ``inbox``: every row the person sent (by sender), processed or not, deleted.
- ``messages``, ``dialog_sessions``: deleted.
- ``bookings``: the Calendly payload and the invitee's time zone cleared (times stay).
- ``suppressions``: the person's entries re-keyed to :func:`~scheduler.store.suppressions.
  address_hash` of the address (the address itself is dropped, the suppression stays); a
  lead that had opted out gets hashed entries even if none existed.
- ``stage_events``: kept, with every reason replaced by ``[erased]`` (reasons may be free
  text typed by a rep); then one audit row ``erased`` by the actor.
- ``lead_notes``: deleted (what reps wrote about the person, and facts from their email).

The lead row stays (it holds the history) with ``erased_at`` set, every personal field
empty and ``bot_paused`` on; its ``version`` is bumped so any fenced write computed from
what it was fails. Erasing twice runs the steps again (anything written meanwhile goes too)
without a second audit row.

Tables added later that hold personal data get a step here, in lock-order position.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, false, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.errors import NotFoundError
from scheduler.store.contact_points import BSUID_SENDER, Kind
from scheduler.store.models import (
    Booking,
    ContactPoint,
    DialogSessionRow,
    IdentityConflict,
    IdentityEvent,
    InboxItem,
    Lead,
    LeadNote,
    Message,
    OutboxItem,
    OutboxState,
    StageEvent,
    Suppression,
    Touch,
)
from scheduler.store.suppressions import address_hash, normalize_address
from scheduler.store.touches import OPEN, TouchStatus

ERASED = "[erased]"
AUDIT_REASON = "erased"
CANCELLED_NOTE = "cancelled: lead erased"


@dataclass(slots=True)
class Erasing:
    """What every step gets: the lead (read before its fields were cleared) and the rest."""

    session: AsyncSession
    lead_id: int
    # The person's addresses, as the lead held them (E.164 phone, normalized email).
    addresses: set[str]
    opted_out: bool
    hash_key: bytes
    now: datetime


@dataclass(slots=True)
class ErasureReport:
    """What an erasure changed, per table."""

    lead_id: int
    already_erased: bool
    rows: dict[str, int] = field(default_factory=dict)


Step = Callable[[Erasing], Awaitable[int]]


async def erase_lead(
    session: AsyncSession, lead_id: int, *, actor: str, hash_key: bytes, now: datetime
) -> ErasureReport:
    """Remove the person behind ``lead_id`` (see the module docstring), in the caller's
    transaction; :class:`NotFoundError` for an unknown lead."""
    if not hash_key:
        raise ValueError("erasure needs the service's secret key (LEADBOT_SECRET_KEY)")
    lead = await session.scalar(
        select(Lead)
        .where(Lead.id == lead_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if lead is None:
        raise NotFoundError(f"lead {lead_id} does not exist")
    already = lead.erased_at is not None
    addresses = {a for a in (lead.phone, lead.email) if a}
    for kind, value in await session.execute(
        select(ContactPoint.kind, ContactPoint.value).where(ContactPoint.lead_id == lead_id)
    ):
        addresses.add(value)
        if kind == Kind.BSUID:
            addresses.add(BSUID_SENDER + value)  # how the inbox keys a username-only sender
    addresses |= {normalize_address(a) for a in addresses}
    erasing = Erasing(session, lead_id, addresses, lead.opted_out_at is not None, hash_key, now)
    from_stage = lead.stage
    await session.execute(
        update(_t(Lead))
        .where(_t(Lead).c.id == lead_id)
        .values(
            name=None,
            email=None,
            phone=None,
            company=None,
            role=None,
            source=None,
            attribution={},
            timezone=None,
            qualification=None,
            enrichment=None,
            email_status=None,
            whatsapp_window_closed_at=None,
            bot_paused=True,
            lost_reason=ERASED if lead.lost_reason else None,
            version=_t(Lead).c.version + 1,
            updated_at=now,
            erased_at=lead.erased_at or now,
        )
    )
    report = ErasureReport(lead_id, already)
    for name, step in STEPS:
        report.rows[name] = await step(erasing)
    if not already:
        await session.execute(
            insert(_t(StageEvent)).values(
                lead_id=lead_id,
                from_stage=from_stage,
                to_stage=from_stage,
                reason=AUDIT_REASON,
                actor=actor[:100],
                at=now,
            )
        )
    await session.refresh(lead)
    return report


def _t(model: Any) -> Table:
    table: Table = model.__table__
    return table


async def _locked_ids(
    session: AsyncSession, table: Table, where: ColumnElement[bool]
) -> list[int]:
    """Ids of the matching rows, locked in ascending id (the lock order within a table)."""
    query = select(table.c.id).where(where).order_by(table.c.id).with_for_update()
    return list(await session.scalars(query))


async def _touches(e: Erasing) -> int:
    t = _t(Touch)
    ids = await _locked_ids(e.session, t, t.c.lead_id == e.lead_id)
    if not ids:
        return 0
    await e.session.execute(
        update(t)
        .where(t.c.id.in_(ids), t.c.status.in_(OPEN))
        .values(status=TouchStatus.CANCELLED.value, claim_token=None)
    )
    await e.session.execute(
        update(t).where(t.c.id.in_(ids)).values(draft=None, note=None, meta={})
    )
    await e.session.execute(
        update(t)
        .where(t.c.id.in_(ids), t.c.status == TouchStatus.CANCELLED.value)
        .values(note=CANCELLED_NOTE)
    )
    return len(ids)


async def _outbox(e: Erasing) -> int:
    t = _t(OutboxItem)
    mine = or_(
        t.c.lead_id == e.lead_id,
        # Rows about the lead on others' channels: rep notifications (``rep:…``), outbound
        # events (``event:…``), CRM and ad-platform syncs; each names it ``…:lead:<id>:…``.
        t.c.key.like(f"%:lead:{e.lead_id}:%"),
        t.c.recipient.in_(e.addresses) if e.addresses else false(),
    )
    ids = await _locked_ids(e.session, t, mine)
    if not ids:
        return 0
    # ``updated_at`` is kept where only personal data goes: the email caps count by it.
    keep = t.c.updated_at
    await e.session.execute(
        update(t).where(t.c.id.in_(ids)).values(payload={}, error=None, updated_at=keep)
    )
    await e.session.execute(
        update(t)
        .where(t.c.id.in_(ids), t.c.state == OutboxState.PENDING.value)
        .values(
            state=OutboxState.FAILED.value,
            error=CANCELLED_NOTE,
            next_attempt_at=None,
            updated_at=e.now,
        )
    )
    # Rep notifications keep their recipient (the rep); the prospect's address goes.
    prospect = or_(t.c.lead_id == e.lead_id, t.c.recipient.in_(e.addresses))
    await e.session.execute(
        update(t)
        .where(t.c.id.in_(ids), prospect, ~t.c.key.like("rep:%"))
        .values(recipient=ERASED, updated_at=keep)
    )
    return len(ids)


async def _inbox(e: Erasing) -> int:
    t = _t(InboxItem)
    senders = {a for a in e.addresses if a.startswith(("+", BSUID_SENDER))}
    if not senders:
        return 0
    ids = await _locked_ids(e.session, t, t.c.sender.in_(senders))
    if ids:
        await e.session.execute(delete(t).where(t.c.id.in_(ids)))
    return len(ids)


async def _messages(e: Erasing) -> int:
    t = _t(Message)
    ids = await _locked_ids(e.session, t, t.c.lead_id == e.lead_id)
    if ids:
        await e.session.execute(delete(t).where(t.c.id.in_(ids)))
    return len(ids)


async def _dialog_sessions(e: Erasing) -> int:
    t = _t(DialogSessionRow)
    result = await e.session.execute(delete(t).where(t.c.lead_id == e.lead_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def _bookings(e: Erasing) -> int:
    t = _t(Booking)
    ids = await _locked_ids(e.session, t, t.c.lead_id == e.lead_id)
    if ids:
        await e.session.execute(update(t).where(t.c.id.in_(ids)).values(payload={}, timezone=None))
    return len(ids)


async def _suppressions(e: Erasing) -> int:
    t = _t(Suppression)
    plain = {normalize_address(a) for a in e.addresses}
    hashed = {address_hash(a, e.hash_key): a for a in plain}
    if not plain:
        return 0
    rows = (
        await e.session.execute(
            select(t.c.id, t.c.address, t.c.reason)
            .where(t.c.address.in_(plain | set(hashed)))
            .order_by(t.c.id)
            .with_for_update()
        )
    ).all()
    present = {row.address for row in rows}
    changed = 0
    for row in rows:
        if row.address not in plain:
            continue
        digest = address_hash(row.address, e.hash_key)
        if digest in present:  # erased before (a returning person): one hashed entry is enough
            await e.session.execute(delete(t).where(t.c.id == row.id))
        else:
            await e.session.execute(
                update(t).where(t.c.id == row.id).values(address=digest, detail=None)
            )
            present.add(digest)
        changed += 1
    if e.opted_out:
        # Opted out without an entry for some address (e.g. stopped on WhatsApp, never
        # emailed): the person stays unreachable on every address the lead had.
        for digest in sorted(set(hashed) - present):
            await e.session.execute(
                insert(t).values(address=digest, reason="opt_out", detail=None, created_at=e.now)
            )
            changed += 1
    return changed


async def _stage_events(e: Erasing) -> int:
    t = _t(StageEvent)
    result = await e.session.execute(
        update(t)
        .where(t.c.lead_id == e.lead_id, t.c.reason.is_not(None), t.c.reason != AUDIT_REASON)
        .values(reason=ERASED)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _identity(e: Erasing) -> int:
    """The person's contact points, and the identity trail and conflicts that name them."""
    count = 0
    for model in (ContactPoint, IdentityEvent):
        t = _t(model)
        result = await e.session.execute(delete(t).where(t.c.lead_id == e.lead_id))
        count += int(getattr(result, "rowcount", 0) or 0)
    t = _t(IdentityConflict)
    result = await e.session.execute(
        delete(t).where(or_(t.c.lead_id == e.lead_id, t.c.other_lead_id == e.lead_id))
    )
    return count + int(getattr(result, "rowcount", 0) or 0)


async def _notes(e: Erasing) -> int:
    t = _t(LeadNote)
    ids = await _locked_ids(e.session, t, t.c.lead_id == e.lead_id)
    if ids:
        await e.session.execute(delete(t).where(t.c.id.in_(ids)))
    return len(ids)


STEPS: tuple[tuple[str, Step], ...] = (
    ("touches", _touches),
    ("outbox", _outbox),
    ("inbox", _inbox),
    ("messages", _messages),
    ("dialog_sessions", _dialog_sessions),
    ("bookings", _bookings),
    ("suppressions", _suppressions),
    ("stage_events", _stage_events),
    ("identity", _identity),
    ("lead_notes", _notes),
)
"""The per-table steps, in lock order (after the lead row). Add new tables here."""
