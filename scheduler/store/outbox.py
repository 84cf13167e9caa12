"""Outbox rows: the one builder of a row, storing intents (at most once per key), and the
lookups other components make (what was sent, to whom, which lead a sent message was for).

Delivery itself (claiming rows, sending, recording outcomes) is
:class:`scheduler.delivery.outbox.Dispatcher`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.engine import insert_or_ignore
from scheduler.store.models import OutboxItem, OutboxState

_TABLE = cast(Table, OutboxItem.__table__)
_CHUNK = 500  # values per IN (…) list: well under every backend's bound-parameter limit
_BY_EXTERNAL_IDS = select(_TABLE.c.id, _TABLE.c.lead_id, _TABLE.c.external_id).where(
    _TABLE.c.external_id.in_(bindparam("external_ids", expanding=True)),
    _TABLE.c.channel == bindparam("channel"),
)


def outbox_row(
    *,
    key: str,
    channel: str,
    recipient: str,
    payload: Mapping[str, Any],
    now: datetime,
    lead_id: int | None = None,
    not_before: datetime | None = None,
) -> dict[str, Any]:
    """The column values of a new intent to send: ``pending``, never tried, due at once
    (or at ``not_before``). Every outbox row is built here."""
    return {
        "key": key,
        "channel": channel,
        "recipient": recipient,
        "payload": dict(payload),
        "lead_id": lead_id,
        "state": OutboxState.PENDING.value,
        "attempts": 0,
        "next_attempt_at": not_before,
        "created_at": now,
        "updated_at": now,
    }


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    channel: str,
    recipient: str,
    payload: Mapping[str, Any],
    now: datetime,
    lead_id: int | None = None,
    not_before: datetime | None = None,
) -> int | None:
    """Store an intent to send, in the caller's transaction. Returns the new row's id, or
    None when an intent with this key already exists (it is never stored twice)."""
    row = outbox_row(
        key=key,
        channel=channel,
        recipient=recipient,
        payload=payload,
        now=now,
        lead_id=lead_id,
        not_before=not_before,
    )
    statement = insert_or_ignore(session, _TABLE, ["key"], returning=(_TABLE.c.id,))
    item_id: int | None = await session.scalar(statement, row)
    return item_id


async def enqueue_many(
    session: AsyncSession, rows: Sequence[dict[str, Any]]
) -> tuple[dict[str, int], list[int]]:
    """Store several intents (:func:`outbox_row` values) in one statement (ON CONFLICT DO
    NOTHING on the key). Returns the row id of every key, whether stored now or before (an
    intent is never stored twice), and the ids of the rows stored now."""
    if not rows:
        return {}, []
    statement = (
        insert_or_ignore(session, OutboxItem, ["key"])
        .values(list(rows))
        .returning(OutboxItem.id, OutboxItem.key)
    )
    ids = {key: item_id for item_id, key in await session.execute(statement)}
    new = list(ids.values())
    missing = [r["key"] for r in rows if r["key"] not in ids]
    if missing:  # enqueued before (never twice): the existing row
        found = await session.execute(
            select(OutboxItem.key, OutboxItem.id).where(OutboxItem.key.in_(missing))
        )
        ids.update({key: item_id for key, item_id in found})
    return ids, new


# -- what was sent -------------------------------------------------------------------------


async def sent_count_since(session: AsyncSession, channel: str, since: datetime) -> int:
    """How many rows of ``channel`` were sent (last updated) at or after ``since``."""
    count = await session.scalar(
        select(func.count()).where(*_sent(channel), OutboxItem.updated_at >= since)
    )
    return count or 0


async def recent_by_domain(
    session: AsyncSession, channel: str, domains: Iterable[str], after: datetime
) -> dict[str, tuple[int, datetime | None]]:
    """For each of ``domains`` that rows of ``channel`` sent after ``after`` went to: how
    many, and the oldest one's time (recipients' domains compared lower-cased)."""
    domain = _domain_of(session)
    wanted = sorted(set(domains))
    counts: dict[str, tuple[int, datetime | None]] = {}
    for first in range(0, len(wanted), _CHUNK):
        recent = await session.execute(
            select(domain, func.count(), func.min(OutboxItem.updated_at))
            .where(
                *_sent(channel),
                OutboxItem.updated_at > after,
                domain.in_(wanted[first : first + _CHUNK]),
            )
            .group_by(domain)
        )
        counts.update({str(r[0]): (int(r[1]), r[2]) for r in recent})
    return counts


def _sent(channel: str) -> tuple[Any, ...]:
    return (OutboxItem.channel == channel, OutboxItem.state == OutboxState.SENT.value)


def _domain_of(session: AsyncSession) -> Any:
    """SQL for the lower-cased domain of ``OutboxItem.recipient`` on the session's backend."""
    position = func.strpos if session.get_bind().dialect.name == "postgresql" else func.instr
    return func.lower(func.substr(OutboxItem.recipient, position(OutboxItem.recipient, "@") + 1))


async def recipients_among(
    session: AsyncSession, channel: str, addresses: Iterable[str]
) -> frozenset[str]:
    """Those of ``addresses`` (lower-cased) that rows of ``channel`` were addressed to."""
    rows: Any = await session.scalars(
        select(func.lower(OutboxItem.recipient)).where(
            OutboxItem.channel == channel, func.lower(OutboxItem.recipient).in_(set(addresses))
        )
    )
    return frozenset(rows)


async def lead_of_sent(session: AsyncSession, external_ids: Sequence[str]) -> int | None:
    """The lead of one of the rows sent with these provider ids (a Message-ID a reply
    refers to), or None."""
    lead_id: int | None = await session.scalar(
        select(OutboxItem.lead_id)
        .where(OutboxItem.external_id.in_(external_ids), OutboxItem.lead_id.is_not(None))
        .limit(1)
    )
    return lead_id


def by_external_ids(
    connection: Connection, channel: str, external_ids: Sequence[str]
) -> dict[str, tuple[int, int | None]]:
    """``external id → (row id, lead id)`` of the rows of ``channel`` sent with those ids
    (synchronous: for the webhook's one-greenlet writes)."""
    wanted = sorted(set(external_ids))
    items: dict[str, tuple[int, int | None]] = {}
    for first in range(0, len(wanted), _CHUNK):
        rows = connection.execute(
            _BY_EXTERNAL_IDS,
            {"external_ids": wanted[first : first + _CHUNK], "channel": channel},
        )
        items.update({r.external_id: (r.id, r.lead_id) for r in rows})
    return items


async def last_id(session: AsyncSession) -> int:
    """The newest row's id (0 when there is none)."""
    return int(await session.scalar(select(func.coalesce(func.max(OutboxItem.id), 0))) or 0)


async def to_recipient(
    session: AsyncSession, channel: str, recipient: str, *, after_id: int = 0
) -> list[OutboxItem]:
    """The rows of ``channel`` addressed to ``recipient`` after ``after_id``, oldest first."""
    rows = await session.scalars(
        select(OutboxItem)
        .where(
            OutboxItem.channel == channel,
            OutboxItem.recipient == recipient,
            OutboxItem.id > after_id,
        )
        .order_by(OutboxItem.id)
    )
    return list(rows)
