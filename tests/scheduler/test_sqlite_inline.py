"""SQLite runs in the event loop's thread where aiosqlite's internals are the ones expected,
on aiosqlite's own thread otherwise (with a warning); either way a lock held by another
process is waited for without blocking the loop, and the same work stores the same rows."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

import scheduler.store.engine
from scheduler.store import sqlite_inline
from scheduler.store.engine import create_engine


@pytest.fixture(autouse=True)
def _fresh_check() -> Iterator[None]:
    sqlite_inline.available.cache_clear()
    yield
    sqlite_inline.available.cache_clear()


def _engine(path: Path, *, inline: bool, monkeypatch: pytest.MonkeyPatch) -> AsyncEngine:
    with monkeypatch.context() as patch:
        patch.setattr(sqlite_inline, "available", lambda: inline)
        return create_engine(f"sqlite+aiosqlite:///{path}")


@pytest.fixture(params=["inline", "thread"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[AsyncEngine, Path]]:
    path = tmp_path / "store.db"
    engine = _engine(path, inline=request.param == "inline", monkeypatch=monkeypatch)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (body TEXT UNIQUE)"))
    yield engine, path
    await engine.dispose()


def _other_process_holding_the_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    return other


async def _thread_of_statements(engine: AsyncEngine) -> int:
    seen: list[int] = []
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        await raw.driver_connection.create_function(  # type: ignore[union-attr]
            "whose", 0, lambda: seen.append(threading.get_ident()) or 1
        )
        await connection.execute(text("SELECT whose()"))
    [thread] = seen
    return thread


async def test_statements_run_in_the_event_loops_thread_when_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path / "inline.db", inline=True, monkeypatch=monkeypatch)
    threads_before = threading.active_count()
    try:
        assert await _thread_of_statements(engine) == threading.get_ident()
        assert threading.active_count() == threads_before  # no worker thread was started
    finally:
        await engine.dispose()


async def test_statements_run_on_aiosqlites_thread_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _engine(tmp_path / "thread.db", inline=False, monkeypatch=monkeypatch)
    try:
        assert await _thread_of_statements(engine) != threading.get_ident()
    finally:
        await engine.dispose()


async def test_a_lock_held_elsewhere_is_waited_for_without_blocking_the_loop(
    store: tuple[AsyncEngine, Path],
) -> None:
    engine, path = store
    other = _other_process_holding_the_write_lock(path)

    async def write() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO notes VALUES ('after the lock')"))

    writer = asyncio.create_task(write())
    ticks = 0
    while ticks < 200:  # the loop keeps turning while the writer waits for the lock
        await asyncio.sleep(0)
        ticks += 1
    assert not writer.done()
    other.execute("COMMIT")
    other.close()
    await asyncio.wait_for(writer, timeout=10)
    async with engine.connect() as connection:
        assert (await connection.scalar(text("SELECT body FROM notes"))) == "after the lock"


async def test_a_lock_never_released_fails_after_the_busy_timeout(
    store: tuple[AsyncEngine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, path = store
    monkeypatch.setattr(scheduler.store.engine, "SQLITE_BUSY_TIMEOUT", 0.05)
    await engine.dispose()  # the next connection is opened with the shorter timeout
    other = _other_process_holding_the_write_lock(path)
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as connection:
                await connection.execute(text("INSERT INTO notes VALUES ('never')"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with engine.begin() as connection:  # the engine is usable again afterwards
        await connection.execute(text("INSERT INTO notes VALUES ('later')"))
        assert (await connection.scalar(text("SELECT count(*) FROM notes"))) == 1


async def test_inline_and_on_the_thread_the_same_work_stores_the_same_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = {}
    for inline in (True, False):
        engine = _engine(tmp_path / f"{inline}.db", inline=inline, monkeypatch=monkeypatch)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE notes (body TEXT UNIQUE, n INT)"))
                await connection.execute(
                    text("INSERT INTO notes VALUES (:b, :n)"),
                    [{"b": "kept", "n": 1}, {"b": "ünïcode 👋", "n": None}],
                )
            with pytest.raises(IntegrityError):  # the whole transaction is rolled back
                async with engine.begin() as connection:
                    await connection.execute(text("INSERT INTO notes VALUES ('lost', 2)"))
                    await connection.execute(text("INSERT INTO notes VALUES ('kept', 3)"))
            async with engine.connect() as connection:
                await connection.execute(text("UPDATE notes SET n = 5 WHERE body = 'kept'"))
                await connection.rollback()
                rows = await connection.execute(text("SELECT body, n FROM notes ORDER BY rowid"))
                stored[inline] = [tuple(row) for row in rows]
        finally:
            await engine.dispose()

    assert stored[True] == stored[False] == [("kept", 1), ("ünïcode 👋", None)]


def test_the_installed_aiosqlite_runs_inline() -> None:
    assert sqlite_inline.mismatch() is None
    assert sqlite_inline.available() is True


def test_an_aiosqlite_not_checked_runs_on_its_thread_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(aiosqlite, "__version__", "0.23.0")

    with caplog.at_level(logging.WARNING, logger="leadbot.db"):
        assert sqlite_inline.available() is False
        assert sqlite_inline.available() is False

    assert [r.getMessage() for r in caplog.records] == [
        "SQLite runs on aiosqlite's worker thread (more CPU a statement): "
        "aiosqlite 0.23.0: its internals were checked on 0.22.x only"
    ]


def test_an_aiosqlite_without_the_internals_used_is_a_mismatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(aiosqlite.Connection, "_execute")

    assert sqlite_inline.mismatch() == f"aiosqlite {aiosqlite.__version__} has no _execute"
