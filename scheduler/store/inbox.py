"""The durable inbox: received messages, stored before the webhook answers 200, and the
statements of the processor that handles them (one turn per sender's burst).

Appending is the hot write: every webhook body is stored before its 200, so this runs for
each one, and what it costs caps the webhook's throughput. :class:`InboxAppender` writes a
batch with ONE ``INSERT … ON CONFLICT DO NOTHING … RETURNING`` through SQLAlchemy Core, or,
where the connection allows it, on the driver connection underneath
(:mod:`scheduler.store.inbox_driver`, the fast path: same rows, a fraction of the CPU;
figures in ``bench/README.md``). Either way a batch is committed on return and a failure
of any kind invalidates the connection (it is closed, which rolls back, and the pool opens a
fresh one) rather than returning it in an unknown state.

The processor (``bot.whatsapp.processor``) reads each sender's oldest unprocessed rows
(:func:`pending`), claims them by marking them processed in its turn's transaction
(:func:`mark_processed`, fenced on ``processed_at`` still empty), and charges failed turns
(:func:`record_failure`); the sweep finds senders left waiting (:func:`unprocessed_senders`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Insert, Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store import inbox_driver
from scheduler.store.models import InboxItem

_INBOX = cast(Table, InboxItem.__table__)
_CONFLICT = ["channel", "external_id"]


@dataclass(frozen=True, slots=True)
class Received:
    """One message to store: its id on the channel (UNIQUE with the channel), who sent it,
    and what the inbox processor needs of it."""

    external_id: str
    sender: str
    payload: dict[str, Any]


def append(engine: Engine, channel: str, messages: Sequence[Received], now: datetime) -> set[str]:
    """Store ``messages`` received on ``channel`` at ``now``, committed on return; those
    already stored are left as they are. Returns the external ids that were new.

    One batch on a connection borrowed for it (:class:`InboxAppender` keeps one between
    batches). Runs inside SQLAlchemy's greenlet (``greenlet_spawn``), like any sync Core
    code on an async engine."""
    return InboxAppender(engine, keep_for=0).append(channel, messages, now)


class InboxAppender:
    """Appends batches to one engine's inbox (see :func:`append`), keeping its connection
    while they keep coming.

    On Postgres the engine pings every connection it hands out of the pool (a server restart
    then costs no request an error): a round trip, and the webhook writes its batches one
    after another, so it would sit on the critical path of every batch. So the connection of
    one batch is kept for the next if that comes within ``keep_for`` seconds; if it comes
    later, the idle connection goes back to the pool and the batch gets a freshly pinged one
    (a connection the server dropped meanwhile is never used). A failed batch drops its
    connection (invalidated). SQLite's one connection is the whole service's and has nothing
    to ping: it is borrowed per batch whatever ``keep_for`` says.

    The first connection decides whether batches go on the driver connection
    (:func:`scheduler.store.inbox_driver.usable`) or through Core.

    One batch at a time (the group commit runs them so), in SQLAlchemy's greenlet; call
    :meth:`close` when done, from the greenlet too.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        keep_for: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.keep_for = keep_for if engine.dialect.name == "postgresql" else 0.0
        self._clock = clock
        self._kept: Connection | None = None
        self._last_used = 0.0
        self.on_driver: bool | None = None  # decided on the first connection

    def append(self, channel: str, messages: Sequence[Received], now: datetime) -> set[str]:
        """Store one batch, committed on return; the external ids that were new."""
        if not messages:
            return set()
        connection = self._checkout()
        try:
            if self.on_driver is None:
                self.on_driver = inbox_driver.usable(connection)
            if self.on_driver:
                new = inbox_driver.append(connection, channel, messages, now)
            else:
                new = _append_core(connection, channel, messages, now)
        except BaseException:
            connection.invalidate()  # closed, which rolls back; the pool opens a fresh one
            connection.close()
            raise
        if self.keep_for > 0:
            self._kept, self._last_used = connection, self._clock()
        else:
            connection.close()
        return new

    def close(self) -> None:
        """Give the kept connection back to the pool."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def _checkout(self) -> Connection:
        kept, self._kept = self._kept, None
        if kept is not None:
            if self._clock() - self._last_used <= self.keep_for:
                return kept
            kept.close()
        return self.engine.connect()


def _append_core(
    connection: Connection, channel: str, messages: Sequence[Received], now: datetime
) -> set[str]:
    rows = [
        {
            "channel": channel,
            "external_id": m.external_id,
            "sender": m.sender,
            "payload": m.payload,
            "received_at": now,
            "attempts": 0,
        }
        for m in messages
    ]
    with connection.begin():
        inserted = connection.execute(_insert_returning(connection.dialect.name), rows)
        return set(inserted.scalars())


@functools.cache
def _insert_returning(dialect: str) -> Insert:
    # Built once: constructing a statement costs more than running this one.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(_INBOX).on_conflict_do_nothing(index_elements=_CONFLICT)
    return statement.returning(_INBOX.c.external_id)


# -- the processor's statements ---------------------------------------------------------------
# Built once, run with parameters (building them costs more than running them).
_RANKED = (
    select(
        _INBOX.c.id,
        _INBOX.c.sender,
        _INBOX.c.payload,
        func.row_number().over(partition_by=_INBOX.c.sender, order_by=_INBOX.c.id).label("n"),
    )
    .where(
        _INBOX.c.channel == bindparam("channel"),
        _INBOX.c.sender.in_(bindparam("senders", expanding=True)),
        _INBOX.c.processed_at.is_(None),
        _INBOX.c.attempts < bindparam("max_attempts"),
    )
    .subquery()
)
# Each sender's oldest unprocessed rows, at most ``batch`` of them.
_PENDING = (
    select(_RANKED.c.id, _RANKED.c.sender, _RANKED.c.payload)
    .where(_RANKED.c.n <= bindparam("batch"))
    .order_by(_RANKED.c.id)
)
_MARK_PROCESSED = (
    update(_INBOX)
    .where(_INBOX.c.id.in_(bindparam("ids", expanding=True)), _INBOX.c.processed_at.is_(None))
    .values(processed_at=bindparam("now"), error=None)
)


async def pending(
    session: AsyncSession, channel: str, senders: Sequence[str], *, batch: int, max_attempts: int
) -> list[tuple[int, str, dict[str, Any]]]:
    """``(row id, sender, payload)`` of each sender's oldest unprocessed rows on ``channel``
    (at most ``batch`` a sender, fewer than ``max_attempts`` tries), in id order."""
    found = await session.execute(
        _PENDING,
        {
            "channel": channel,
            "senders": list(senders),
            "batch": batch,
            "max_attempts": max_attempts,
        },
    )
    return [(row.id, row.sender, row.payload) for row in found]


async def unprocessed_senders(
    session: AsyncSession,
    channel: str,
    *,
    max_attempts: int,
    settled_before: datetime | None = None,
) -> dict[str, datetime]:
    """Senders with unprocessed rows on ``channel`` (fewer than ``max_attempts`` tries) and
    when their newest one arrived (only those whose newest arrived before
    ``settled_before``, if given)."""
    newest = func.max(InboxItem.received_at)
    query = (
        select(InboxItem.sender, newest)
        .where(
            InboxItem.channel == channel,
            InboxItem.processed_at.is_(None),
            InboxItem.attempts < max_attempts,
        )
        .group_by(InboxItem.sender)
    )
    if settled_before is not None:
        query = query.having(newest < settled_before)
    return {sender: at for sender, at in await session.execute(query)}


async def mark_processed(session: AsyncSession, row_ids: Sequence[int], now: datetime) -> int:
    """Mark the rows processed at ``now``, those not processed yet (fenced on it); how many
    were (fewer than asked: someone else handled the rest meanwhile)."""
    claimed = await session.execute(_MARK_PROCESSED, {"ids": list(row_ids), "now": now})
    return int(claimed.rowcount)  # type: ignore[attr-defined]


async def record_failure(
    session: AsyncSession, row_ids: Sequence[int], error: str, *, max_attempts: int, now: datetime
) -> int:
    """Charge the unprocessed rows among ``row_ids`` one attempt that failed with ``error``;
    rows out of attempts are given up (marked processed, the error kept for a human).
    Returns how many were given up."""
    await session.execute(
        update(InboxItem)
        .where(InboxItem.id.in_(row_ids), InboxItem.processed_at.is_(None))
        .values(attempts=InboxItem.attempts + 1, error=error)
    )
    given_up = await session.execute(
        update(InboxItem)
        .where(
            InboxItem.id.in_(row_ids),
            InboxItem.processed_at.is_(None),
            InboxItem.attempts >= max_attempts,
        )
        .values(processed_at=now, error=func.coalesce(InboxItem.error, "") + " (gave up)")
    )
    return int(given_up.rowcount)  # type: ignore[attr-defined]
