"""Delivery statuses that arrive before the send they are about is recorded.

Meta can report ``sent`` (even ``delivered``) for a wamid before the outbox row that sent it
has recorded that wamid: the Graph call returns, the status webhook is delivered at once,
and the dispatcher records its outcomes a moment later. The webhook answers 200 either way
(Meta would not resend), so an unmatched status is *parked* here for :data:`PARK_FOR` and
applied when the wamid is written: by :func:`apply_parked` in the transaction that records
a sent row's ``external_id`` (``scheduler.delivery.outbox``), and by :func:`sweep`, which catches a
status parked while that transaction was in flight (neither saw the other's uncommitted
row) and trims parked statuses that never found their send (messages sent from elsewhere
on the same number, or rows that were never ours).

Statuses arrive out of order, so every write is fenced on the rank already stored
(:func:`set_delivery_status`: ``read`` beats ``delivered`` beats ``sent``; ``failed`` beats
everything): a stale ``sent`` never overwrites ``read``, whichever path applies it.

Lock order (``scheduler.store``): the outbox rows first, in ascending id, then the parked rows.
Effects on the lead (the closed 24-hour window) are applied when the status arrives, by
the webhook (it finds the lead by the recipient's number), never from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from scheduler.store.models import MAX_EXTERNAL_ID, OutboxItem, ParkedStatus

PARK_FOR = timedelta(hours=1)  # Meta's statuses follow a send within seconds; an hour is ample
RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 9}
_SWEEP_BATCH = 500
_WAMID_MAX = MAX_EXTERNAL_ID  # the outbox's external_id column: a longer id never matches

_OUTBOX = cast(Table, OutboxItem.__table__)
_PARKED = cast(Table, ParkedStatus.__table__)


@dataclass(frozen=True, slots=True)
class Status:
    """One delivery status to apply: the provider's message id, the status, and the error
    text to store when it is ``failed``."""

    external_id: str
    status: str
    error: str | None = None


def rank(status: str | None) -> int:
    """How far along ``status`` is (unknown statuses rank 0 and never overwrite anything)."""
    return RANK.get(status or "", 0)


def _rank_sql(column: ColumnElement[Any]) -> ColumnElement[int]:
    return case(*((column == name, value) for name, value in RANK.items()), else_=0)


def _set(*, failed: bool) -> Any:
    # Fenced on what is stored: applies only when the new status is further along.
    values: dict[str, Any] = {"delivery_status": bindparam("b_status")}
    if failed:
        values["error"] = bindparam("b_error")
    return (
        update(_OUTBOX)
        .where(
            _OUTBOX.c.id == bindparam("b_id"),
            _rank_sql(_OUTBOX.c.delivery_status) < bindparam("b_rank"),
        )
        .values(values)
    )


_SET, _SET_FAILED = _set(failed=False), _set(failed=True)


def set_delivery_status(connection: Connection, changes: Sequence[tuple[int, Status]]) -> int:
    """Apply ``(outbox id, status)`` pairs, each only if it is further along than what the
    row holds (a ``failed`` one stores its error too); rows are updated in ascending id
    (the lock order). Returns how many rows changed."""
    changed = 0
    for item_id, s in sorted(changes, key=lambda pair: pair[0]):
        if rank(s.status) == 0:
            continue
        row = {"b_id": item_id, "b_rank": rank(s.status), "b_status": s.status[:20]}
        if s.status == "failed":
            row["b_error"] = s.error
        result = connection.execute(_SET_FAILED if s.status == "failed" else _SET, row)
        changed += int(result.rowcount or 0)
    return changed


def park(connection: Connection, channel: str, statuses: Sequence[Status], now: datetime) -> int:
    """Keep statuses whose send is not recorded yet; returns how many were new (a status
    Meta delivered twice is kept once)."""
    rows = [
        {
            "channel": channel,
            "external_id": s.external_id,
            "status": s.status[:20],
            "error": s.error,
            "parked_at": now,
        }
        for s in statuses
        if len(s.external_id) <= _WAMID_MAX and rank(s.status) > 0
    ]
    if not rows:
        return 0
    insert = _insert_or_ignore(connection)
    return sum(int(connection.execute(insert, row).rowcount or 0) for row in rows)


def _insert_or_ignore(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return dialect.insert(_PARKED).on_conflict_do_nothing(
        index_elements=["channel", "external_id", "status"]
    )


def _apply(connection: Connection, item_ids: Sequence[int] | None) -> int:
    """Apply parked statuses whose wamid is now on an outbox row (those rows only, when
    ``item_ids`` is given), then forget them. Returns how many parked rows were used."""
    query = (
        select(
            _PARKED.c.id,
            _PARKED.c.external_id,
            _PARKED.c.status,
            _PARKED.c.error,
            _OUTBOX.c.id.label("item_id"),
        )
        .select_from(
            _PARKED.join(
                _OUTBOX,
                and_(
                    _OUTBOX.c.channel == _PARKED.c.channel,
                    _OUTBOX.c.external_id == _PARKED.c.external_id,
                ),
            )
        )
        .order_by(_OUTBOX.c.id, _PARKED.c.id)
    )
    if item_ids is not None:
        if not item_ids:
            return 0
        query = query.where(_OUTBOX.c.id.in_(list(item_ids)))
    else:
        query = query.limit(_SWEEP_BATCH)
    found = connection.execute(query).all()
    if not found:
        return 0
    best: dict[int, Status] = {}
    for row in found:  # the furthest status per row: the fence would drop the others anyway
        status = Status(row.external_id, row.status, row.error)
        if row.item_id not in best or rank(status.status) > rank(best[row.item_id].status):
            best[row.item_id] = status
    set_delivery_status(connection, list(best.items()))
    connection.execute(delete(_PARKED).where(_PARKED.c.id.in_(sorted(r.id for r in found))))
    return len(found)


async def apply_parked(session: AsyncSession, item_ids: Sequence[int]) -> int:
    """In the caller's transaction, right after it wrote the ``external_id`` of the outbox
    rows ``item_ids``: apply the statuses parked for them. Returns how many were applied."""
    if not item_ids:
        return 0

    def run(sync: Session) -> int:
        return _apply(sync.connection(), item_ids)

    return await session.run_sync(run)


async def sweep(sessions: async_sessionmaker[AsyncSession], now: datetime) -> tuple[int, int]:
    """Apply parked statuses whose send has been recorded since (a status parked while the
    recording transaction was in flight), and drop those parked longer than
    :data:`PARK_FOR`. Returns ``(applied, expired)``; a periodic job calls it."""

    def run(sync: Session) -> tuple[int, int]:
        connection = sync.connection()
        applied = _apply(connection, None)
        expired = connection.execute(
            delete(_PARKED).where(_PARKED.c.parked_at < now - PARK_FOR)
        ).rowcount
        return applied, int(expired or 0)

    async with sessions.begin() as session:
        return await session.run_sync(run)
