"""The durable inbox: received messages, stored before the webhook answers 200, and the
statements of the processor that handles them (one turn per sender's burst).

Appending is the hot write. Every webhook body is stored before its 200, so this runs for
each one, and what it costs caps the webhook's throughput. Through SQLAlchemy's
``Connection`` a transaction costs a fixed ~400 µs of CPU on SQLite whatever it holds
(checkout, begin, an execution context, events, commit: each a greenlet switch through the
async adapter), against ~70 µs for the same statements on the sqlite3 connection; on
Postgres ~470 against ~280 µs (one message a batch, measured in isolation).

So :func:`append` borrows the driver connection underneath SQLAlchemy's pool (on SQLite the
pool's one connection: see ``scheduler.store.engine``) and sends statements that SQLAlchemy
compiled once from the table, with values converted by the columns' own types, so rows are
stored exactly as the ORM reads them:

- SQLite: ``BEGIN IMMEDIATE`` (waiting in asyncio while another process holds the write
  lock, as every transaction of ours does), one ``INSERT … ON CONFLICT DO NOTHING`` a row
  (sqlite3 keeps it prepared; ``rowcount`` says whether the row was new), ``COMMIT``;
- PostgreSQL: ONE ``INSERT … SELECT … FROM unnest(…) ON CONFLICT DO NOTHING RETURNING``,
  one array a column whatever the batch size; a single statement is its own transaction.

A failure of any kind invalidates the connection (it is closed, which rolls back, and the
pool opens a fresh one) rather than returning it in an unknown state.

The processor (``bot.whatsapp.processor``) reads each sender's oldest unprocessed rows
(:func:`pending`), claims them by marking them processed in its turn's transaction
(:func:`mark_processed`, fenced on ``processed_at`` still empty), and charges failed turns
(:func:`record_failure`); the sweep finds senders left waiting (:func:`unprocessed_senders`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, Text, bindparam, func, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import await_only

from scheduler.store.engine import SQLITE_BUSY_TIMEOUT
from scheduler.store.models import InboxItem
from scheduler.store.sqlite_inline import begin_immediate

_INBOX = cast(Table, InboxItem.__table__)
_COLUMNS = ("channel", "external_id", "sender", "payload", "received_at", "attempts")
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
    after another, so it would sit on the critical path of every batch (measured: a fifth of
    the webhook's throughput at 16 deliveries in flight). So the connection of one batch is
    kept for the next if that comes within ``keep_for`` seconds; if it comes later, the idle
    connection goes back to the pool and the batch gets a freshly pinged one (a connection
    the server dropped meanwhile is never used). A failed batch drops its
    connection (invalidated). SQLite's one connection is the whole service's and has nothing
    to ping: it is borrowed per batch whatever ``keep_for`` says.

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
        self._kept: PoolProxiedConnection | None = None
        self._last_used = 0.0

    def append(self, channel: str, messages: Sequence[Received], now: datetime) -> set[str]:
        """Store one batch, committed on return; the external ids that were new."""
        if not messages:
            return set()
        statement = _compiled(self.engine.dialect)
        raw = self._checkout()
        try:
            if self.engine.dialect.name == "postgresql":
                new = _append_postgres(raw.driver_connection, statement, channel, messages, now)
            else:
                new = _append_sqlite(raw, statement, channel, messages, now)
        except BaseException:
            raw.invalidate()  # closed, which rolls back; the pool opens a fresh one
            raise
        if self.keep_for > 0:
            self._kept, self._last_used = raw, self._clock()
        else:
            raw.close()
        return new

    def close(self) -> None:
        """Give the kept connection back to the pool."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def _checkout(self) -> PoolProxiedConnection:
        kept, self._kept = self._kept, None
        if kept is not None:
            if self._clock() - self._last_used <= self.keep_for:
                return kept
            kept.close()
        return self.engine.raw_connection()


@dataclass(frozen=True)
class _Statement:
    """SQL text for the driver, the order of its parameters, and their converters."""

    sql: str
    order: tuple[str, ...]
    convert: Mapping[str, Callable[[Any], Any]]

    def parameters(self, values: Mapping[str, Any]) -> list[Any]:
        """``values`` by name → the driver's positional parameters, converted."""
        return [
            self.convert[name](values[name]) if name in self.convert else values[name]
            for name in self.order
        ]


@functools.cache
def _compiled(dialect: Dialect) -> _Statement:
    if dialect.name == "postgresql":
        # One typed array a column (JSON documents travel as text and are cast back).
        arrays = [
            bindparam("external_ids", type_=postgresql.ARRAY(_INBOX.c.external_id.type)),
            bindparam("senders", type_=postgresql.ARRAY(_INBOX.c.sender.type)),
            bindparam("payloads", type_=postgresql.ARRAY(Text)),
        ]
        batch = func.unnest(*arrays).table_valued(*_COLUMNS[1:4]).render_derived("batch")
        values: list[Any] = [bindparam(name, type_=_INBOX.c[name].type) for name in _COLUMNS]
        values[1:4] = [batch.c.external_id, batch.c.sender, sql_cast(batch.c.payload, JSON)]
        statement: Any = (
            postgresql.insert(_INBOX)
            .from_select(list(_COLUMNS), select(*values).select_from(batch))
            .on_conflict_do_nothing(index_elements=_CONFLICT)
            .returning(_INBOX.c.external_id)
        )
    else:
        statement = (
            sqlite.insert(_INBOX)
            .values({name: bindparam(name) for name in _COLUMNS})
            .on_conflict_do_nothing(index_elements=_CONFLICT)
        )
    compiled = statement.compile(dialect=dialect)
    convert = {}
    for name in ("payload", "received_at"):
        process = _INBOX.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            convert[name] = process
    assert compiled.positiontup is not None  # both drivers take positional parameters
    return _Statement(str(compiled), tuple(compiled.positiontup), convert)


def _append_sqlite(
    raw: Any,
    statement: _Statement,
    channel: str,
    messages: Sequence[Received],
    now: datetime,
) -> set[str]:
    connection = raw.driver_connection.raw  # the sqlite3 connection (store.sqlite_inline)
    rows = [
        (
            m.external_id,
            statement.parameters(
                {
                    "channel": channel,
                    "external_id": m.external_id,
                    "sender": m.sender,
                    "payload": m.payload,
                    "received_at": now,
                    "attempts": 0,
                }
            ),
        )  # fmt: skip
        for m in messages
    ]
    new = set()
    begin_immediate(raw, SQLITE_BUSY_TIMEOUT)
    for external_id, parameters in rows:
        if connection.execute(statement.sql, parameters).rowcount:
            new.add(external_id)
    connection.execute("COMMIT")
    return new


def _append_postgres(
    connection: Any,
    statement: _Statement,
    channel: str,
    messages: Sequence[Received],
    now: datetime,
) -> set[str]:
    to_json = statement.convert["payload"]
    parameters = statement.parameters(
        {
            "channel": channel,
            "received_at": now,
            "attempts": 0,
            "external_ids": [m.external_id for m in messages],
            "senders": [m.sender for m in messages],
            "payloads": [to_json(m.payload) for m in messages],
        }
    )
    rows = await_only(connection.fetch(statement.sql, *parameters))
    return {row[0] for row in rows}


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
        {"channel": channel, "senders": list(senders), "batch": batch,
         "max_attempts": max_attempts},
    )  # fmt: skip
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
