"""Leads and their contact points: finding a lead, locking it, and the few column updates
made outside the stage machine (inbound activity, opt-out, email status, the WhatsApp
window).

Read a lead to decide a write on it: under its row lock, fresh. A write decided on a stale
read is a lost update: a Calendly reschedule handled by two workers cleared the
``booked_at`` the other had just set, and an email reply racing a rep's "lost" move
reopened the lead. Handlers that decide a stage or booking change re-read the lead with
:func:`lock_lead` first: the lead is the first row their transaction locks (the store's
lock order: leads, then touches, outbox, the rest), so two such transactions on one lead
take turns and the second decides on what the first committed. The stage machine fences the
move itself on the stage and version read (``expected_from``).

SQLite serializes writers (``BEGIN IMMEDIATE``) and renders no ``FOR UPDATE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, bindparam, exists, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import ContactPoint, InboxItem, Lead, Stage, StageEvent, Touch

_LEADS = cast(Table, Lead.__table__)
_CHUNK = 500  # values per IN (…) list
_LOCK_LEADS = (
    select(Lead.id)
    .where(Lead.id.in_(bindparam("ids", expanding=True)))
    .order_by(Lead.id)
    .with_for_update()
)


async def lock_lead(session: AsyncSession, lead_id: int) -> Lead | None:
    """The lead ``lead_id`` re-read under a row lock held until the caller's transaction
    ends (the session's copy is refreshed; pending changes are flushed first); None if it
    does not exist."""
    lead: Lead | None = await session.scalar(
        select(Lead)
        .where(Lead.id == lead_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return lead


async def lock_leads(
    session: AsyncSession, lead_ids: Iterable[int], *, key_share: bool = False
) -> None:
    """Lock the leads ``lead_ids`` in ascending id, first in the caller's transaction (the
    one lock order), on Postgres; SQLite's ``BEGIN IMMEDIATE`` already makes the
    transaction the only writer. ``key_share``: ``FOR NO KEY UPDATE``, what an UPDATE of
    the row takes, so rows that merely reference the lead (inserts with a foreign key)
    are not held up."""
    ids = sorted(set(lead_ids))
    if not ids or session.get_bind().dialect.name != "postgresql":
        return
    if key_share:
        await session.execute(
            select(Lead.id)
            .where(Lead.id.in_(ids))
            .order_by(Lead.id)
            .with_for_update(key_share=True)
        )
    else:
        await session.execute(_LOCK_LEADS, {"ids": ids})


async def lock_stage(session: AsyncSession, lead_id: int) -> str | None:
    """The lead's stage, read under its row lock (``FOR NO KEY UPDATE``); None if gone."""
    stage: str | None = await session.scalar(
        select(Lead.stage).where(Lead.id == lead_id).with_for_update(key_share=True)
    )
    return stage


async def lock_sandbox_lead(session: AsyncSession, phone: str, source: str) -> Lead | None:
    """The lead of ``source`` whose primary phone is ``phone``, locked (the first row the
    transaction locks: lead rows first)."""
    lead: Lead | None = await session.scalar(
        select(Lead).where(Lead.phone == phone, Lead.source == source).with_for_update()
    )
    return lead


async def find_lead(session: AsyncSession, lead_id: int) -> Lead | None:
    """The lead ``lead_id`` (this session's copy if it has one), or None."""
    return await session.get(Lead, lead_id)


async def leads_by_ids(session: AsyncSession, lead_ids: Iterable[int]) -> list[Lead]:
    """The leads among ``lead_ids`` that exist, loaded in ``session``."""
    return list(await session.scalars(select(Lead).where(Lead.id.in_(set(lead_ids)))))


async def list_leads(
    session: AsyncSession, *, stage: str | None = None, after_id: int = 0, limit: int = 50
) -> list[Lead]:
    """Leads in id order after ``after_id`` (keyset paging: stable under concurrent inserts)."""
    query = select(Lead).where(Lead.id > after_id).order_by(Lead.id).limit(limit)
    if stage is not None:
        query = query.where(Lead.stage == stage)
    return list((await session.scalars(query)).all())


async def insert_lead(session: AsyncSession, values: Mapping[str, Any]) -> Lead | None:
    """Insert a new lead; the lead, attached to ``session``. None, with nothing written,
    when a lead with the same email, phone (or token) exists.

    One statement and no savepoint: ``INSERT … ON CONFLICT DO NOTHING RETURNING`` every
    column, from which the mapped lead is built without reading the row again."""
    statement = insert_or_ignore(session, _LEADS, returning=tuple(_LEADS.c))
    row = (await session.execute(statement, values)).one_or_none()
    if row is None:
        return None
    lead = Lead(**row._asdict())
    make_transient_to_detached(lead)  # it is a stored row now: attach it as one, unchanged
    session.add(lead)
    return lead


async def insert_leads(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert new leads (one cached statement, executed for every row); ``token → id`` of
    those inserted (a lead whose email, phone or token exists is not)."""
    statement = insert_or_ignore(session, _LEADS, returning=(_LEADS.c.id, _LEADS.c.token))
    inserted = await session.execute(statement, rows)
    return {row.token: row.id for row in inserted}


async def fill_empty(
    session: AsyncSession, lead_id: int, columns: Mapping[str, Any], now: datetime
) -> None:
    """Set ``columns`` of the lead, each only where it is still empty (all or none)."""
    fill = update(Lead).where(Lead.id == lead_id)
    for column in columns:
        fill = fill.where(getattr(Lead, column).is_(None))
    await session.execute(fill.values(**columns, updated_at=now))


# -- the stage (written only by scheduler.pipeline.stages) ----------------------------------------
_CURRENT = select(_LEADS.c.stage, _LEADS.c.version).where(_LEADS.c.id == bindparam("b_id"))
# The SET clause is whatever else the parameters name (stage, version, updated_at, …).
_MOVE = update(_LEADS).where(
    _LEADS.c.id == bindparam("b_id"),
    _LEADS.c.stage == bindparam("b_stage"),
    _LEADS.c.version == bindparam("b_version"),
)


async def stage_and_version(session: AsyncSession, lead_id: int) -> tuple[str, int] | None:
    """The lead's stage and version, or None when it does not exist."""
    row = (await session.execute(_CURRENT, {"b_id": lead_id})).one_or_none()
    return (row.stage, row.version) if row is not None else None


async def move_stage(
    session: AsyncSession, lead_id: int, *, stage: str, version: int, values: Mapping[str, Any]
) -> bool:
    """Write ``values`` (the new stage, version, …) if the lead is still at ``stage`` and
    ``version`` (fenced on what the caller read); False when it moved meanwhile."""
    result = await session.execute(
        _MOVE, {**values, "b_id": lead_id, "b_stage": stage, "b_version": version}
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


async def reload_lead(session: AsyncSession, lead: Lead) -> None:
    """Read ``lead``'s row again into the session's copy (after Core statements changed
    it; flush pending changes first or they are lost)."""
    await session.refresh(lead)


def note_stage_move(lead: Lead, event: StageEvent, now: datetime) -> None:
    """Tell a loaded lead what a stage move (``event``, written by a Core UPDATE) stored,
    instead of reading the row back: a round trip per move. ``version`` is informative
    only: the session never writes it back, and the stage machine fences its own update
    on the stored one. (Flush pending changes before the move: this hides them.)"""
    set_committed_value(lead, "stage", event.to_stage)
    set_committed_value(lead, "version", lead.version + 1)
    set_committed_value(lead, "updated_at", now)
    if event.to_stage == Stage.LOST.value:
        set_committed_value(lead, "lost_reason", event.reason)
    elif event.from_stage == Stage.LOST.value:
        set_committed_value(lead, "lost_reason", None)


# -- finding leads ------------------------------------------------------------------------


async def lead_by_token(session: AsyncSession, token: str) -> Lead | None:
    """The lead whose link token is exactly ``token``."""
    lead: Lead | None = await session.scalar(select(Lead).where(Lead.token == token))
    return lead


async def leads_by_token_ignoring_case(
    session: AsyncSession, token: str, *, limit: int
) -> list[Lead]:
    """At most ``limit`` leads whose token is ``token`` compared case-insensitively."""
    return list(
        await session.scalars(
            select(Lead).where(func.lower(Lead.token) == token.lower()).limit(limit)
        )
    )


async def ids_by_tokens(session: AsyncSession, tokens: Sequence[str]) -> dict[str, int]:
    """``token → lead id`` for those of ``tokens`` that are some lead's."""
    found: dict[str, int] = {}
    for first in range(0, len(tokens), _CHUNK):
        named = await session.execute(
            select(Lead.token, Lead.id).where(Lead.token.in_(tokens[first : first + _CHUNK]))
        )
        found.update({token: lead_id for token, lead_id in named})
    return found


async def lead_by_email(session: AsyncSession, email: str) -> Lead | None:
    """The lead whose (normalized) email is exactly ``email``."""
    lead: Lead | None = await session.scalar(select(Lead).where(Lead.email == email))
    return lead


async def leads_by_email_ignoring_case(session: AsyncSession, email: str) -> list[Lead]:
    """Leads whose email is ``email`` lower-cased (0 or 1: emails are unique)."""
    return list(await session.scalars(select(Lead).where(func.lower(Lead.email) == email)))


async def by_emails(session: AsyncSession, emails: Sequence[str]) -> list[tuple[str, int, str]]:
    """``(email, lead id, token)`` of the leads whose email is one of ``emails`` (stored
    normalized, lower-case: the unique index answers this)."""
    found: list[tuple[str, int, str]] = []
    for first in range(0, len(emails), _CHUNK):
        rows = await session.execute(
            select(Lead.email, Lead.id, Lead.token).where(
                Lead.email.in_(emails[first : first + _CHUNK])
            )
        )
        found += [(str(r[0]), int(r[1]), str(r[2])) for r in rows]
    return found


async def contacts_of(
    session: AsyncSession, lead_ids: Iterable[int]
) -> list[tuple[int, str | None, str | None]]:
    """``(id, email, phone)`` of the leads among ``lead_ids``."""
    rows = await session.execute(
        select(Lead.id, Lead.email, Lead.phone).where(Lead.id.in_(set(lead_ids)))
    )
    return [(int(i), e, p) for i, e, p in rows]


async def by_primary_contacts(
    session: AsyncSession, emails: Sequence[str], phones: Sequence[str]
) -> list[tuple[int, str | None, str | None]]:
    """``(id, email, phone)`` of the leads whose primary email or phone is one of these."""
    rows = await session.execute(
        select(Lead.id, Lead.email, Lead.phone).where(
            or_(Lead.email.in_(emails), Lead.phone.in_(phones))
        )
    )
    return [(int(i), e, p) for i, e, p in rows]


async def by_phone(session: AsyncSession, phone: str) -> tuple[int, str | None] | None:
    """``(lead id, source)`` of the lead whose primary phone is ``phone``, or None."""
    row = (
        await session.execute(select(Lead.id, Lead.source).where(Lead.phone == phone))
    ).one_or_none()
    return (row.id, row.source) if row is not None else None


# -- column updates -----------------------------------------------------------------------


async def note_inbound(session: AsyncSession, lead_id: int, now: datetime) -> None:
    """The lead wrote to us at ``now``."""
    await session.execute(
        update(Lead).where(Lead.id == lead_id).values(last_inbound_at=now, updated_at=now)
    )


async def set_opted_out(session: AsyncSession, lead_id: int, reason: str, now: datetime) -> None:
    """Flag the lead opted out (``email_status`` = ``reason``), unless it already was (the
    first time is kept)."""
    await session.execute(
        update(Lead)
        .where(Lead.id == lead_id, Lead.opted_out_at.is_(None))
        .values(opted_out_at=now, email_status=reason, updated_at=now)
    )


async def set_email_status(
    session: AsyncSession, lead_id: int, status: str, now: datetime
) -> None:
    """Why we no longer email the lead (``bounced: …``)."""
    await session.execute(
        update(Lead).where(Lead.id == lead_id).values(email_status=status, updated_at=now)
    )


async def store_qualification(
    session: AsyncSession,
    lead_id: int,
    *,
    qualification: dict[str, Any],
    enrichment: dict[str, Any],
    now: datetime,
) -> Any:
    """Store the first-touch flow's result on the lead unless one is stored already (fenced
    on it: one run wins); the lead's ``stage``, ``opted_out_at`` and ``bot_paused`` as
    written, or None when another run stored its result first."""
    stored = await session.execute(
        update(Lead)
        .where(Lead.id == lead_id, Lead.qualification.is_(None))
        .values(qualification=qualification, enrichment=enrichment, updated_at=now)
        .returning(Lead.stage, Lead.opted_out_at, Lead.bot_paused)
    )
    return stored.one_or_none()


# -- scans -----------------------------------------------------------------------------------


async def unqualified_new_leads(
    session: AsyncSession,
    *,
    created_by: Sequence[str],
    since: datetime,
    after_id: int,
    limit: int,
) -> list[int]:
    """Ids of new email leads created (their creation's stage event) by one of
    ``created_by`` since ``since`` and not qualified yet, in id order after ``after_id``."""
    created = (
        select(StageEvent.lead_id)
        .where(StageEvent.from_stage.is_(None), StageEvent.actor.in_(created_by))
        .scalar_subquery()
    )
    query = (
        select(Lead.id)
        .where(
            Lead.stage == Stage.NEW.value,
            Lead.email.is_not(None),
            Lead.qualification.is_(None),
            Lead.created_at >= since,
            Lead.id.in_(created),
            Lead.id > after_id,
        )
        .order_by(Lead.id)
        .limit(limit)
    )
    return list(await session.scalars(query))


async def without_next_step(
    session: AsyncSession,
    *,
    stages: Sequence[str],
    under_way: Sequence[str],
    quiet_since: datetime,
    after_id: int,
    limit: int,
) -> list[Any]:
    """Leads in ``stages`` (id order after ``after_id``) with nothing under way: no touch in
    ``under_way``, no unprocessed inbox row from their phone, not opted out, paused or
    booked, created and last heard from before ``quiet_since``. Rows of ``id``, ``stage``,
    ``qualification``, ``last_inbound_at``, ``last_outbound_at``."""
    open_touch = exists().where(Touch.lead_id == Lead.id, Touch.status.in_(under_way))
    open_inbox = exists().where(InboxItem.sender == Lead.phone, InboxItem.processed_at.is_(None))
    query = (
        select(
            Lead.id, Lead.stage, Lead.qualification, Lead.last_inbound_at, Lead.last_outbound_at
        )
        .where(
            Lead.stage.in_(stages),
            Lead.id > after_id,
            Lead.opted_out_at.is_(None),
            Lead.bot_paused.is_(False),
            Lead.booked_at.is_(None),
            Lead.created_at < quiet_since,
            or_(Lead.last_inbound_at.is_(None), Lead.last_inbound_at < quiet_since),
            ~open_touch,
            ~open_inbox,
        )
        .order_by(Lead.id)
        .limit(limit)
    )
    return list((await session.execute(query)).all())


# -- the WhatsApp customer-service window ---------------------------------------------------


async def service_window(
    session: AsyncSession, recipient: str
) -> tuple[datetime | None, datetime | None] | None:
    """``(last_inbound_at, whatsapp_window_closed_at)`` of the lead a WhatsApp recipient
    is, or None when it is no lead's."""
    row = (
        await session.execute(
            select(Lead.last_inbound_at, Lead.whatsapp_window_closed_at)
            .where(_lead_of(recipient))
            .limit(1)
        )
    ).one_or_none()
    return (row.last_inbound_at, row.whatsapp_window_closed_at) if row is not None else None


async def close_service_window(session: AsyncSession, recipient: str, now: datetime) -> None:
    """Meta refused a free-form message to ``recipient`` (131047): note it on its lead."""
    await session.execute(
        update(Lead).where(_lead_of(recipient)).values(whatsapp_window_closed_at=now)
    )


def _e164(recipient: str) -> str:
    return "+" + recipient.lstrip("+")


def _lead_of(recipient: str) -> ColumnElement[bool]:
    """The lead a WhatsApp recipient is: by phone, or by the WhatsApp id / BSUID it wrote
    from (a Mexican ``521…`` wa_id is not the lead's phone)."""
    channel_ids = select(ContactPoint.lead_id).where(
        ContactPoint.kind.in_(("whatsapp", "bsuid")),
        ContactPoint.value.in_((recipient, _e164(recipient))),
    )
    return or_(Lead.phone == _e164(recipient), Lead.id.in_(channel_ids))


def lead_id_by_phone(connection: Connection, phone: str) -> int | None:
    """The id of the lead whose primary phone is ``phone`` (synchronous)."""
    lead_id: int | None = connection.scalar(select(_LEADS.c.id).where(_LEADS.c.phone == phone))
    return lead_id


def close_window_unless_newer(connection: Connection, lead_id: int, at: datetime) -> None:
    """Meta reported the lead's 24-hour window closed at ``at``: note it, only if they have
    not written since (their newer message reopened it). Synchronous."""
    connection.execute(
        update(_LEADS)
        .where(_LEADS.c.id == lead_id)
        .where((_LEADS.c.last_inbound_at.is_(None)) | (_LEADS.c.last_inbound_at < at))
        .values(whatsapp_window_closed_at=at)
    )
