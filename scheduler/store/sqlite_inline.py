"""SQLite for asyncio without a thread hop: aiosqlite's interface, run in the event loop.

aiosqlite sends every call to a worker thread and wakes the loop when it is done. On a local
WAL database a statement takes microseconds, the round trip through the thread (a queue put,
a GIL hand-over, ``call_soon_threadsafe``, a loop iteration) costs far more: measured here,
a one-statement transaction through SQLAlchemy took 2.6 ms of CPU with the thread and
0.8 ms inline, and every turn of a conversation runs about twenty statements.

:class:`InlineConnection` is an :class:`aiosqlite.Connection` whose calls run at once, in the
caller's thread, so SQLAlchemy's aiosqlite dialect uses it unchanged (``async_creator``).

The one place SQLite could make the loop wait is the write lock, when another *process*
holds it (a CLI import next to the service). The connection's own busy handler is off;
:func:`begin_immediate` takes the lock with ``BEGIN IMMEDIATE`` and, while it is taken
elsewhere, sleeps in asyncio (not in SQLite) between tries, up to ``busy_timeout``. Our own
transactions never contend: the engine has one connection (see ``scheduler.store.engine``).

This relies on aiosqlite 0.22's internals (``_tx``, ``_execute``, ``_connect``), which is
why ``pyproject.toml`` pins it to that minor version.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.util import await_only

_FIRST_WAIT = 0.002
_MAX_WAIT = 0.1


class _InlineQueue:
    """Stands in for aiosqlite's queue to its worker thread: runs each call when queued.
    (SQLAlchemy's dialect queues a few calls itself, e.g. setting ``isolation_level``.)"""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as the thread would
            if future is not None and not future.done():
                future.set_exception(exc)
        else:
            if future is not None and not future.done():
                future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose worker thread is never started: calls run inline."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _InlineQueue()  # type: ignore[assignment]

    def __await__(self) -> Any:
        return self._connect().__await__()  # no thread to start

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    @property
    def raw(self) -> sqlite3.Connection:
        """The sqlite3 connection underneath."""
        return self._conn


def inline_creator(url: str) -> Callable[[], InlineConnection]:
    """``async_creator`` for ``create_async_engine``: inline connections to ``url``'s
    database, opened as SQLAlchemy's aiosqlite dialect would open them, busy handler off."""
    args, options = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    kwargs: dict[str, Any] = {**options, "timeout": 0, "check_same_thread": False}
    (database,) = args

    def create() -> InlineConnection:
        return InlineConnection(lambda: sqlite3.connect(database, **kwargs))

    return create


def begin_immediate(dbapi_connection: Any, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE`` on SQLAlchemy's adapted connection; while another process holds
    the write lock, wait in asyncio and retry, raising "database is locked" after
    ``busy_timeout`` seconds. Call from SQLAlchemy's ``begin`` event (inside its greenlet)."""
    raw: sqlite3.Connection = dbapi_connection.driver_connection.raw
    deadline = time.monotonic() + busy_timeout
    wait = _FIRST_WAIT
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() + wait > deadline:
                # As SQLAlchemy would have raised it from a statement of its own.
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        await_only(asyncio.sleep(wait))  # waiting for another process: not a race fix
        wait = min(wait * 2, _MAX_WAIT)
