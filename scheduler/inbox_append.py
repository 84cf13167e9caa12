"""Append received messages to the durable inbox on the driver connection: the hot write.

Every webhook body is stored before its 200, so this runs for each one, and what it costs
caps the webhook's throughput. Through SQLAlchemy's ``Connection`` a transaction costs a
fixed ~400 µs of CPU on SQLite whatever it holds (checkout, begin, an execution context,
events, commit: each a greenlet switch through the async adapter), against ~70 µs for the
same statements on the sqlite3 connection; on Postgres ~470 against ~280 µs (one message
a batch, measured in isolation).

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
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, Text, bindparam, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine
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
