"""Engines for the stage store: SQLite (embedded default) and PostgreSQL.

SQLite gets WAL, ``BEGIN IMMEDIATE`` for every transaction (in WAL mode a deferred
transaction that reads and then writes fails at once with "database is locked" when another
connection committed in between, so we take the write lock up front instead) and runs its
calls inline in the event loop where the installed aiosqlite allows it
(:mod:`scheduler.store.sqlite_inline`), waiting for a lock held by another process up to
``SQLITE_BUSY_TIMEOUT``.

The lock order and the fencing rules every transaction follows: :mod:`scheduler.store`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from sqlalchemy import Insert, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from scheduler.store import sqlite_inline
from scheduler.store.sqlite_files import database_file, restrict

SQLITE_PRAGMAS = (
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
)
SQLITE_BUSY_TIMEOUT = 30.0  # seconds to wait for a write lock another process holds

log = logging.getLogger("leadbot.db")
T = TypeVar("T")
# SQLSTATEs of a transaction the server aborted only because of others: retrying may succeed.
_RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure


def _json_dumps(value: Any) -> str:
    """JSON columns' serializer: orjson (a fraction of json's cost; inbox payloads and
    dialog sessions are written on every message). Non-string keys become strings, as
    json.dumps makes them."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int | None = None,
    server_settings: dict[str, str] | None = None,
) -> AsyncEngine:
    """Create an async engine for ``url`` with the settings its backend needs.

    Postgres connections are pinged when checked out of the pool (a server restart costs
    no request an error); ``max_overflow`` defaults to ``pool_size``; ``server_settings``
    are sent when connecting (scratch stores set their ``search_path``). SQLite ignores
    the pool options: it has one connection. Statement parameters are never rendered in
    errors or the echo log (``hide_parameters``): they carry names, emails, phones."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, echo=echo)
    return create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,  # errors and logs name no lead's data (names, emails, phones)
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
        connect_args={"server_settings": server_settings} if server_settings else {},
    )


def _create_sqlite_engine(url: str, *, echo: bool) -> AsyncEngine:
    path = database_file(url)
    if path is not None:
        restrict(path)  # owner-only, before SQLite creates it with the umask's mode
    # One connection: SQLite has one writer at a time anyway, and when several connections
    # contend for the write lock, SQLite's busy handler makes the losers sleep (up to 100 ms
    # a try) even after the lock is free. Queuing for the one connection in asyncio instead
    # keeps writes back to back. The rule this implies: never hold a session while waiting
    # for another one (or for the network) — claim, commit, then work.
    inline = (
        {"async_creator": sqlite_inline.inline_creator(url)} if sqlite_inline.available() else {}
    )
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,  # errors and logs name no lead's data (names, emails, phones)
        **inline,
        pool_size=1,
        max_overflow=0,
        pool_timeout=60,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 module from issuing its own deferred BEGIN; we issue ours below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Switching to WAL may wait for another process once, at connect; after that the
        # busy timeout is the one the connection keeps (sqlite_inline.busy_timeout_ms).
        busy = sqlite_inline.busy_timeout_ms(dbapi_connection, SQLITE_BUSY_TIMEOUT)
        for pragma in ("busy_timeout=5000", *SQLITE_PRAGMAS, f"busy_timeout={busy}"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        sqlite_inline.begin_immediate(connection.connection, SQLITE_BUSY_TIMEOUT)

    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (we return them from APIs)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(engine: AsyncEngine) -> bool:
    """True when ``engine`` talks to PostgreSQL."""
    return engine.dialect.name == "postgresql"


def insert_or_ignore(
    session: AsyncSession,
    table: Any,
    index_elements: list[str] | None = None,
    *,
    returning: tuple[Any, ...] = (),
) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` for the session's backend (same SQL on both).

    With ``index_elements`` only conflicts on that unique index are ignored; without, any.
    ``returning`` columns come back for the rows actually inserted.
    """
    keys = tuple(index_elements) if index_elements is not None else None
    return _insert_or_ignore_on(session.get_bind().dialect.name, table, keys, returning)


@functools.cache
def _insert_or_ignore_on(
    dialect: str,
    table: Any,
    index_elements: tuple[str, ...] | None,
    returning: tuple[Any, ...] = (),
) -> Insert:
    # Built once per table: constructing statements is a good part of SQLAlchemy's cost per
    # execution, and these run in every turn. Statements are immutable, so sharing is safe.
    elements = list(index_elements) if index_elements is not None else None
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(table).on_conflict_do_nothing(index_elements=elements)
    return statement.returning(*returning) if returning else statement


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` aborted a transaction only because of concurrent ones (a Postgres
    deadlock or serialization failure, SQLite's "database is locked"): running the whole
    transaction again may succeed."""
    if not isinstance(exc, DBAPIError):
        return False
    original = exc.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if state in _RETRYABLE_SQLSTATES:
        return True
    # asyncpg's exceptions arrive wrapped; their class names say what happened.
    for error in (original, getattr(original, "__cause__", None)):
        name = type(error).__name__
        if name in ("DeadlockDetectedError", "SerializationError"):
            return True
    return "database is locked" in str(original)


async def run_retrying(
    sessions: async_sessionmaker[AsyncSession],
    work: Callable[[AsyncSession], Awaitable[T]],
    *,
    attempts: int = 5,
    what: str = "transaction",
) -> T:
    """Run ``work`` in a transaction of its own, again (up to ``attempts`` times in all) when
    the transaction is aborted by a deadlock, a serialization failure or a locked database.
    ``work`` must be safe to run again from scratch (each try is rolled back in full)."""
    for attempt in range(1, attempts + 1):
        try:
            async with sessions.begin() as session:
                return await work(session)
        except DBAPIError as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            log.warning(
                "%s aborted by a concurrent one (try %d of %d); running it again",
                what,
                attempt,
                attempts,
            )
            await asyncio.sleep(0.01 * attempt)  # let the other transaction finish first
    raise AssertionError("unreachable")


async def run_in_greenlet(work: Callable[..., T], *args: Any) -> T:
    """Run the synchronous ``work(*args)`` in ONE of SQLAlchemy's greenlets, where it may
    use an async engine's ``sync_engine`` and the store's synchronous functions: each
    awaited call of SQLAlchemy's asyncio API would be a greenlet switch of its own (the
    webhook's writes run this way)."""
    return await greenlet_spawn(work, *args)


async def ping(engine: AsyncEngine) -> None:
    """Run ``SELECT 1`` on a connection of ``engine``: raises when the database is down."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
