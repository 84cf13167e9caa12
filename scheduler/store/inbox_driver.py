"""Appending to the inbox on the driver connection: the webhook's fast path.

The one module that writes inbox rows past SQLAlchemy's ``Connection`` (the seam of this
fast path; :mod:`scheduler.store.inbox` holds the plain Core path it replaces and chooses).

Every webhook body is stored before its 200, so the append runs for each one, and what it
costs caps the webhook's throughput. Through SQLAlchemy's ``Connection`` a transaction pays a
fixed cost whatever it holds (begin, an execution context, events, commit: each a greenlet
switch through the async adapter) that is several times the statements' own; the figures
are in ``bench/README.md`` (``python -m bench.bench_fast_paths inbox``).

So :func:`append` takes the driver connection underneath SQLAlchemy's and sends statements
that SQLAlchemy compiled once from the table, with values converted by the columns' own
types, so rows are stored exactly as the ORM reads them:

- SQLite, only where it runs inline (:func:`scheduler.store.sqlite_inline.sqlite3_connection`):
  ``BEGIN IMMEDIATE`` (waiting in asyncio while another process holds the write lock, as
  every transaction of ours does), one ``INSERT … ON CONFLICT DO NOTHING`` a row (sqlite3
  keeps it prepared; ``rowcount`` says whether the row was new), ``COMMIT``;
- PostgreSQL on asyncpg: ONE ``INSERT … SELECT … FROM unnest(…) ON CONFLICT DO NOTHING
  RETURNING``, one array a column whatever the batch size; a single statement is its own
  transaction.

:func:`usable` says whether a connection can take this path (checked once per appender);
anything else (another driver, SQLite on aiosqlite's thread, a compiled statement not in
the shape expected) takes the plain path. The caller invalidates the connection when this
raises: it may be left inside a transaction.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import JSON, Table, Text, bindparam, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from scheduler.store.engine import SQLITE_BUSY_TIMEOUT
from scheduler.store.models import InboxItem
from scheduler.store.sqlite_inline import begin_immediate, sqlite3_connection

if TYPE_CHECKING:
    from scheduler.store.inbox import Received

_INBOX = cast(Table, InboxItem.__table__)
_COLUMNS = ("channel", "external_id", "sender", "payload", "received_at", "attempts")
_CONFLICT = ["channel", "external_id"]
# The parameter style each driver's compiled statement must have for the SQL sent as is.
_PARAMSTYLES = {"sqlite": "qmark", "postgresql": "numeric_dollar"}

log = logging.getLogger("leadbot.db")


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


def usable(connection: Connection) -> bool:
    """True when :func:`append` can write on ``connection``'s driver connection."""
    dialect = connection.dialect
    if dialect.name == "sqlite":
        driver_ok = sqlite3_connection(connection.connection.dbapi_connection) is not None
    else:
        driver_ok = dialect.name == "postgresql" and dialect.driver == "asyncpg"
    if not driver_ok:
        return False
    if _compiled(dialect) is None:
        log.warning(
            "inbox: SQLAlchemy %s compiled the append not as expected; using Core", dialect.name
        )
        return False
    return True


def append(
    connection: Connection, channel: str, messages: Sequence[Received], now: datetime
) -> set[str]:
    """Store ``messages`` on ``connection``'s driver connection (see the module docstring),
    committed on return; the external ids that were new. Only where :func:`usable`."""
    statement = _compiled(connection.dialect)
    assert statement is not None
    dbapi_connection = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        return _append_postgres(dbapi_connection, statement, channel, messages, now)
    return _append_sqlite(dbapi_connection, statement, channel, messages, now)


@functools.cache
def _compiled(dialect: Dialect) -> _Statement | None:
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
    if compiled.positiontup is None or dialect.paramstyle != _PARAMSTYLES.get(dialect.name):
        return None
    convert = {}
    for name in ("payload", "received_at"):
        process = _INBOX.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            convert[name] = process
    return _Statement(str(compiled), tuple(compiled.positiontup), convert)


def _append_sqlite(
    dbapi_connection: Any,
    statement: _Statement,
    channel: str,
    messages: Sequence[Received],
    now: datetime,
) -> set[str]:
    connection = sqlite3_connection(dbapi_connection)
    assert connection is not None
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
        )
        for m in messages
    ]
    new = set()
    begin_immediate(dbapi_connection, SQLITE_BUSY_TIMEOUT)
    for external_id, parameters in rows:
        if connection.execute(statement.sql, parameters).rowcount:
            new.add(external_id)
    connection.execute("COMMIT")
    return new


def _append_postgres(
    dbapi_connection: Any,
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
    # The adapted connection's own way to run a coroutine of the driver (in the greenlet).
    rows = dbapi_connection.run_async(lambda driver: driver.fetch(statement.sql, *parameters))
    return {row[0] for row in rows}
