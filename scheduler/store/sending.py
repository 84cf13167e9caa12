"""The outbox's state machine in SQL: due rows, claims, start marks, outcomes, reaping.

:class:`scheduler.delivery.outbox.Dispatcher` decides; these functions are its statements.
Each write is fenced on what the caller read (the claim's ``claim_token``, the state it
expects), and they follow the store's lock order when a caller runs several in one
transaction: leads (:func:`lock_leads_for_outcomes`), touches (:func:`lock_queued_touches`),
outbox rows, then messages. The claim is the order's one exemption: it never waits
(``SKIP LOCKED``: a locked row is someone else's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from scheduler.store.models import Lead, Message, OutboxItem, OutboxState, Rep, Touch
from scheduler.store.touches import TouchStatus

CHUNK = 500  # ids per IN (…) list: well under every backend's bound-parameter limit
_TABLE = cast(Table, OutboxItem.__table__)
_LEADS = cast(Table, Lead.__table__)
_TOUCHES = cast(Table, Touch.__table__)
_SENDING = OutboxState.SENDING.value


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Conditions of a row that may be sent now."""
    return (
        OutboxItem.state == OutboxState.PENDING.value,
        or_(OutboxItem.next_attempt_at.is_(None), OutboxItem.next_attempt_at <= now),
    )


def _chunks(ids: Sequence[Any]) -> list[Sequence[Any]]:
    return [ids[first : first + CHUNK] for first in range(0, len(ids), CHUNK)]


async def due_ids(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Ids of pending rows due at ``now``, oldest first."""
    query = select(OutboxItem.id).where(*_due(now)).order_by(OutboxItem.id).limit(limit)
    return list(await session.scalars(query))


async def retry_times(
    session: AsyncSession, ids: Sequence[int]
) -> list[tuple[int, datetime | None]]:
    """When each still-pending row among ``ids`` may be tried again."""
    rows = await session.execute(
        select(OutboxItem.id, OutboxItem.next_attempt_at).where(
            OutboxItem.id.in_(ids), OutboxItem.state == OutboxState.PENDING.value
        )
    )
    return [(item_id, at) for item_id, at in rows]


async def states_of(session: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """The state of each row among ``ids`` that exists."""
    states: dict[int, str] = {}
    for chunk in _chunks(ids):
        rows = await session.execute(
            select(OutboxItem.id, OutboxItem.state).where(OutboxItem.id.in_(chunk))
        )
        states.update({item_id: state for item_id, state in rows})
    return states


async def claim(session: AsyncSession, ids: Sequence[int], now: datetime, token: str) -> list[Any]:
    """``pending → sending`` for the rows among ``ids`` that are due, under ``token``: one
    conditional UPDATE, so concurrent claimers never share a row. Rows with ``id``,
    ``channel``, ``recipient``, ``payload``, ``attempts``, ``lead_id``."""
    picked = select(OutboxItem.id).where(OutboxItem.id.in_(ids), *_due(now))
    if session.get_bind().dialect.name == "postgresql":
        # Never waits (the lock order's exemption): a locked row is someone else's.
        picked = picked.with_for_update(skip_locked=True)
    rows = await session.execute(
        update(OutboxItem)
        .where(OutboxItem.id.in_(picked.scalar_subquery()))
        .values(
            state=_SENDING,
            attempts=OutboxItem.attempts + 1,
            claim_token=token,
            sending_started_at=None,
            updated_at=now,
        )
        .returning(
            OutboxItem.id,
            OutboxItem.channel,
            OutboxItem.recipient,
            OutboxItem.payload,
            OutboxItem.attempts,
            OutboxItem.lead_id,
        )
        .execution_options(synchronize_session=False)
    )
    return list(rows)


async def mark_started(
    session: AsyncSession, token: str, ids: Sequence[int], now: datetime
) -> set[int]:
    """Mark the attempt of each row among ``ids`` as started, if the row is still the
    claim's (``token``) and not started; returns the ids marked."""
    marked = await session.scalars(
        update(OutboxItem)
        .where(
            OutboxItem.id.in_(sorted(ids)),
            OutboxItem.claim_token == token,
            OutboxItem.state == _SENDING,
            OutboxItem.sending_started_at.is_(None),
        )
        .values(sending_started_at=now, updated_at=now)
        .returning(OutboxItem.id)
        .execution_options(synchronize_session=False)
    )
    return set(marked)


async def opt_out_facts(
    session: AsyncSession, lead_ids: Sequence[int]
) -> dict[int, tuple[datetime | None, str | None]]:
    """Each lead's ``opted_out_at`` and ``email_status`` (the send-time checks)."""
    facts: dict[int, tuple[datetime | None, str | None]] = {}
    for chunk in _chunks(sorted(lead_ids)):
        rows = await session.execute(
            select(Lead.id, Lead.opted_out_at, Lead.email_status).where(Lead.id.in_(chunk))
        )
        facts.update({r.id: (r.opted_out_at, r.email_status) for r in rows})
    return facts


async def rep_addresses_among(session: AsyncSession, addresses: Sequence[str]) -> list[str]:
    """The reps' email addresses and WhatsApp numbers among ``addresses`` (as stored)."""
    found: list[str] = []
    for chunk in _chunks(sorted(addresses)):
        rows = await session.execute(
            select(Rep.email, Rep.whatsapp).where(
                or_(Rep.email.in_(chunk), Rep.whatsapp.in_(chunk))
            )
        )
        found.extend(a for row in rows for a in row if a)
    return found


async def started_before(session: AsyncSession, cutoff: datetime) -> list[tuple[int, Any]]:
    """Rows ``sending`` whose request started before ``cutoff``: (id, payload)."""
    rows = await session.execute(
        select(OutboxItem.id, OutboxItem.payload).where(
            OutboxItem.state == _SENDING, OutboxItem.sending_started_at < cutoff
        )
    )
    return [(int(row.id), row.payload) for row in rows]


async def mark_interrupted(
    session: AsyncSession, ids: Sequence[int], cutoff: datetime, now: datetime
) -> set[int]:
    """``sending → uncertain`` for the rows among ``ids`` still started before ``cutoff``
    (their request may have left); returns the ids marked."""
    marked = await session.scalars(
        update(OutboxItem)
        .where(
            OutboxItem.id.in_(ids),
            OutboxItem.state == _SENDING,
            OutboxItem.sending_started_at < cutoff,
        )
        .values(
            state=OutboxState.UNCERTAIN.value, error="interrupted while sending", updated_at=now
        )
        .returning(OutboxItem.id)
        .execution_options(synchronize_session=False)
    )
    return set(marked)


async def release_unstarted(session: AsyncSession, claimed_before: datetime, now: datetime) -> int:
    """``sending → pending`` for claims made before ``claimed_before`` whose request never
    started: the try is free (``attempts`` back). Returns how many."""
    released = await session.execute(
        update(OutboxItem)
        .where(
            OutboxItem.state == _SENDING,
            OutboxItem.sending_started_at.is_(None),
            OutboxItem.updated_at < claimed_before,
        )
        .values(
            state=OutboxState.PENDING.value,
            attempts=OutboxItem.attempts - 1,
            claim_token=None,
            next_attempt_at=None,
            error="claim expired before its send started",
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return int(released.rowcount)  # type: ignore[attr-defined]


async def lock_leads_for_outcomes(session: AsyncSession, lead_ids: Sequence[int]) -> list[Any]:
    """Lock the leads in id order (the lock order's first step); rows with ``id``,
    ``stage`` and ``erased_at``."""
    rows = await session.execute(
        select(Lead.id, Lead.stage, Lead.erased_at)
        .where(Lead.id.in_(sorted(lead_ids)))
        .order_by(Lead.id)
        .with_for_update()
    )
    return list(rows)


async def set_last_outbound(session: AsyncSession, at_by_lead: Mapping[int, datetime]) -> None:
    """``leads.last_outbound_at`` of each lead (locked by the caller)."""
    if at_by_lead:
        await session.execute(
            update(_LEADS)
            .where(_LEADS.c.id == bindparam("b_id"))
            .values(last_outbound_at=bindparam("b_at")),
            [{"b_id": i, "b_at": at} for i, at in sorted(at_by_lead.items())],
        )


async def lock_queued_touches(session: AsyncSession, touch_ids: Sequence[int]) -> None:
    """Lock the queued touches among ``touch_ids`` in id order (Postgres; the lock order)."""
    if touch_ids and session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(Touch.id)
            .where(Touch.id.in_(sorted(touch_ids)), Touch.status == TouchStatus.QUEUED.value)
            .order_by(Touch.id)
            .with_for_update()
        )


async def finish_queued_touches(
    session: AsyncSession,
    touch_ids: Sequence[int],
    status: TouchStatus,
    note: str | None,
    now: datetime,
) -> None:
    """Queued touches take their outbox row's final state (``sent_at`` only when sent)."""
    if not touch_ids:
        return
    values: dict[str, Any] = {"status": status.value}
    if status is TouchStatus.SENT:
        values["sent_at"] = now
    elif note is not None:
        values["note"] = note[:2000]
    await session.execute(
        update(_TOUCHES)
        .where(_TOUCHES.c.id.in_(sorted(touch_ids)), _TOUCHES.c.status == TouchStatus.QUEUED.value)
        .values(**values)
    )


async def record_sent(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """``sent`` with the provider's id, for each claim still holding its row (``b_id``,
    ``b_token``, ``b_external_id``, ``b_now``)."""
    await session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.claim_token == bindparam("b_token"))
        .values(
            state=OutboxState.SENT.value,
            external_id=bindparam("b_external_id"),
            error=None,
            updated_at=bindparam("b_now"),
        ),
        rows,
    )


async def record_final(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """A final state (``failed``, ``uncertain``) with its error, for each claim still
    holding its row (``b_id``, ``b_token``, ``b_state``, ``b_error``, ``b_now``)."""
    await session.execute(
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("b_id"), _TABLE.c.claim_token == bindparam("b_token"))
        .values(
            state=bindparam("b_state"), error=bindparam("b_error"), updated_at=bindparam("b_now")
        ),
        rows,
    )


async def record_retry(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Back to ``pending`` for another try (``b_id``, ``b_token``, ``b_attempts``,
    ``b_next``, ``b_error``, ``b_now``), for each claim still holding its row."""
    await session.execute(
        update(_TABLE)
        .where(
            _TABLE.c.id == bindparam("b_id"),
            _TABLE.c.claim_token == bindparam("b_token"),
            _TABLE.c.state == _SENDING,
        )
        .values(
            state=OutboxState.PENDING.value,
            attempts=bindparam("b_attempts"),
            next_attempt_at=bindparam("b_next"),
            error=bindparam("b_error"),
            claim_token=None,
            sending_started_at=None,
            updated_at=bindparam("b_now"),
        ),
        rows,
    )


async def insert_messages(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """The conversation's record of what went out."""
    if rows:
        await session.execute(insert(Message), list(rows))
