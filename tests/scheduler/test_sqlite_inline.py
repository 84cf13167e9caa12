"""SQLite runs in the event loop's thread, and waits for another process's lock in asyncio."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

import scheduler.store.engine
from scheduler.store.engine import create_engine


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[tuple[AsyncEngine, Path]]:
    path = tmp_path / "inline.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE notes (body TEXT)"))
    yield engine, path
    await engine.dispose()


def _other_process_holding_the_write_lock(path: Path) -> sqlite3.Connection:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_statements_run_in_the_event_loops_thread(
    store: tuple[AsyncEngine, Path],
) -> None:
    engine, _ = store
    threads_before = threading.active_count()
    seen: list[int] = []
    async with engine.connect() as connection:
        raw = await connection.get_raw_connection()
        raw.driver_connection.raw.create_function(
            "whose", 0, lambda: seen.append(threading.get_ident()) or 1
        )
        await connection.execute(text("SELECT whose()"))
    assert seen == [threading.get_ident()]
    assert threading.active_count() == threads_before  # no worker thread was started


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
