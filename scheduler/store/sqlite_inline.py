"""SQLite for asyncio without a thread hop: aiosqlite's interface, run in the event loop.

The one module that touches aiosqlite's internals (the seam of this fast path).

aiosqlite sends every call to a worker thread and wakes the loop when it is done. On a local
WAL database a statement takes far less than that round trip through the thread (a queue
put, a GIL hand-over, ``call_soon_threadsafe``, a loop iteration), and every turn of a
conversation runs about twenty statements: the CPU a transaction costs either way is in
``bench/README.md`` (``python -m bench.bench_fast_paths sqlite``).

:class:`InlineConnection` is an :class:`aiosqlite.Connection` whose calls run at once, in the
caller's thread, so SQLAlchemy's aiosqlite dialect uses it unchanged (``async_creator``). It
overrides aiosqlite's private ``_execute`` and ``_connect`` and replaces the queue ``_tx``,
so it is used only where :func:`available` finds the aiosqlite it was checked against;
anywhere else the engine runs on aiosqlite's own thread, as the library intends, and a
warning says so once.

The one place SQLite could make the loop wait is the write lock, when another *process*
holds it (a CLI import next to the service). Inline, the connection's own busy handler is
off; :func:`begin_immediate` takes the lock with ``BEGIN IMMEDIATE`` and, while it is taken
elsewhere, sleeps in asyncio (not in SQLite) between tries, up to ``busy_timeout``. On
aiosqlite's thread the busy handler waits in that thread (:func:`busy_timeout_ms`). Our own
transactions never contend: the engine has one connection (see ``scheduler.store.engine``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.util import await_only

# The aiosqlite versions whose internals this module was read against (``pyproject.toml``
# pins the same range). Raise both together, after reading ``aiosqlite/core.py`` again.
CHECKED_VERSIONS = ("0.22.",)
# What of aiosqlite.Connection this module overrides or uses.
_CLASS_INTERNALS = ("_execute", "_connect", "_conn")
_INSTANCE_INTERNALS = ("_tx", "_running", "_connection")

_FIRST_WAIT = 0.002
_MAX_WAIT = 0.1

log = logging.getLogger("leadbot.db")


def mismatch() -> str | None:
    """Why the installed aiosqlite cannot be run inline, or None when it can."""
    version = str(getattr(aiosqlite, "__version__", "unknown"))
    if not version.startswith(CHECKED_VERSIONS):
        checked = ", ".join(f"{prefix}x" for prefix in CHECKED_VERSIONS)
        return f"aiosqlite {version}: its internals were checked on {checked} only"
    missing = [name for name in _CLASS_INTERNALS if not hasattr(aiosqlite.Connection, name)]
    try:
        probe = aiosqlite.Connection(lambda: sqlite3.connect(":memory:"), 64)  # never started
    except Exception as exc:
        return f"aiosqlite {version}: Connection(connector, iter_chunk_size) failed: {exc!r}"
    missing += [name for name in _INSTANCE_INTERNALS if not hasattr(probe, name)]
    if not callable(getattr(getattr(probe, "_tx", None), "put_nowait", None)):
        missing.append("_tx.put_nowait")
    if missing:
        return f"aiosqlite {version} has no {', '.join(missing)}"
    return None


@functools.cache
def available() -> bool:
    """True when SQLite can run inline (checked once; a warning when it cannot)."""
    reason = mismatch()
    if reason is not None:
        log.warning("SQLite runs on aiosqlite's worker thread (more CPU a statement): %s", reason)
        return False
    return True


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
    database, opened as SQLAlchemy's aiosqlite dialect would open them, busy handler off.
    Only where :func:`available` says so."""
    args, options = SQLiteDialect_aiosqlite().create_connect_args(make_url(url))
    kwargs: dict[str, Any] = {**options, "timeout": 0, "check_same_thread": False}
    (database,) = args

    def create() -> InlineConnection:
        return InlineConnection(lambda: sqlite3.connect(database, **kwargs))

    return create


def sqlite3_connection(dbapi_connection: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection under SQLAlchemy's adapted connection when it runs inline
    (safe to use from the event loop's thread), else None."""
    driver = getattr(dbapi_connection, "driver_connection", None)
    return driver.raw if isinstance(driver, InlineConnection) else None


def busy_timeout_ms(dbapi_connection: Any, busy_timeout: float) -> int:
    """The ``PRAGMA busy_timeout`` a new connection keeps: 0 inline (SQLite's busy handler
    would stall the event loop; :func:`begin_immediate` waits in asyncio instead), else
    ``busy_timeout`` (the handler sleeps in aiosqlite's thread, the loop goes on)."""
    return 0 if sqlite3_connection(dbapi_connection) is not None else int(busy_timeout * 1000)


def begin_immediate(dbapi_connection: Any, busy_timeout: float) -> None:
    """``BEGIN IMMEDIATE`` on SQLAlchemy's adapted connection; while another process holds
    the write lock, wait and retry, raising "database is locked" after ``busy_timeout``
    seconds. Call from SQLAlchemy's ``begin`` event (inside its greenlet)."""
    raw = sqlite3_connection(dbapi_connection)
    if raw is None:  # on aiosqlite's thread: SQLite's busy handler waits there
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            if not _is_lock_error(exc):
                raise
            # As SQLAlchemy would have raised it from a statement of its own.
            raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        finally:
            cursor.close()
        return
    deadline = time.monotonic() + busy_timeout
    wait = _FIRST_WAIT
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() + wait > deadline:
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
        await_only(asyncio.sleep(wait))  # waiting for another process: not a race fix
        wait = min(wait * 2, _MAX_WAIT)


def _is_lock_error(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)
