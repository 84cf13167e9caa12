"""Scratch stage stores for benchmarks and tests: migrated, empty, and gone afterwards.

On PostgreSQL the tables live in a schema of their own (``search_path``), dropped at the end,
so runs never see each other's rows nor leave any in a shared database.

:func:`scratch_store` migrates a new store each time (benchmarks; tests of the migrations).
The test suite's ``engine`` fixture migrates once per session instead: :class:`SQLiteTemplate`
is a migrated file each test gets a copy of, :class:`SharedSchema` a migrated Postgres schema
the tests share and that is emptied after each one.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.store.engine import create_engine
from scheduler.store.migrate import upgrade
from scheduler.store.models import Base

POSTGRES_URL = os.environ.get(
    "LEADBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


async def postgres_reachable(url: str = POSTGRES_URL) -> bool:
    """True when a Postgres server answers at ``url`` (benchmarks skip it otherwise)."""
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


@asynccontextmanager
async def scratch_store(
    url: str, *, pool_size: int = 20, max_overflow: int = 10, prefix: str = "bench"
) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty store at ``url`` (an SQLite file URL, or Postgres in a new schema)."""
    if url.startswith("sqlite"):
        engine = create_engine(url)
        schema = None
    else:
        schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
        await _admin(url, f'CREATE SCHEMA "{schema}"')
        engine = _schema_engine(url, schema, pool_size=pool_size, max_overflow=max_overflow)
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        if schema is not None:
            await _admin(url, f'DROP SCHEMA "{schema}" CASCADE')


class SQLiteTemplate:
    """An SQLite store migrated once, at its first use; each caller gets a copy of the file.

    Copying a file of a few hundred kB is far cheaper than running the migrations, and a
    copy is as isolated as a store migrated for the test alone (ids start at 1 again)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "migrated.db"
        self._migrated = False

    async def copy(self, path: Path) -> str:
        """Put a migrated, empty database at ``path``; returns its URL."""
        if not self._migrated:
            engine = create_engine(f"sqlite+aiosqlite:///{self.path}")
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()
            # Closing the last connection folds the WAL into the file: the file alone is
            # the database (a leftover -wal would hold part of the schema and not be copied).
            wal = self.path.with_name(self.path.name + "-wal")
            assert not wal.exists(), f"{wal} outlived its last connection"
            self._migrated = True
        shutil.copyfile(self.path, path)
        return f"sqlite+aiosqlite:///{path}"


class SharedSchema:
    """A Postgres schema migrated once, at its first use, and emptied after each user.

    :meth:`empty` deletes every row and restarts every id sequence (tests may rely on the
    first rep or lead being id 1), in one round trip. DELETE rather than TRUNCATE: on the
    few rows a test leaves, TRUNCATE of every table (new files for each table and index)
    costs more than the migrations it replaces. A test that changes the schema cannot share
    it: mark it ``fresh_store``. If emptying fails anyway, the next user gets a new schema."""

    def __init__(self, url: str, *, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.schema: str | None = None
        self._empty_sql = ""
        self._created: list[str] = []

    async def engine(self, **pool: Any) -> AsyncEngine:
        """An engine on the migrated schema (migrating it first if this is its first use);
        the caller disposes of it, then calls :meth:`empty`."""
        if self.schema is None:
            await self._create()
        assert self.schema is not None
        return _schema_engine(self.url, self.schema, **pool)

    async def empty(self) -> None:
        """Delete every row and restart the id sequences; the schema stays migrated."""
        if self.schema is None:
            return
        try:
            await _admin_script(self.url, self._empty_sql)
        except Exception as exc:
            self.schema = None  # whatever state it is in, nobody uses it again
            raise RuntimeError(
                "could not empty the shared test schema (did the test change the schema, or "
                "leave a transaction holding locks? a test that alters the schema needs "
                "@pytest.mark.fresh_store)"
            ) from exc

    async def drop(self) -> None:
        """Drop every schema this object created (at the end of the session)."""
        for schema in self._created:
            await _admin(self.url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        self._created.clear()
        self.schema = None

    async def _create(self) -> None:
        schema = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        await _admin(self.url, f'CREATE SCHEMA "{schema}"')
        self._created.append(schema)
        engine = _schema_engine(self.url, schema, pool_size=1, max_overflow=0)
        try:
            await upgrade(engine)
            async with engine.connect() as connection:
                listed = "SELECT {0}name FROM pg_{0}s WHERE schemaname = :schema"
                found: dict[str, list[str]] = {
                    kind: list(
                        (await connection.execute(text(listed.format(kind)), {"schema": schema}))
                        .scalars()
                        .all()
                    )
                    for kind in ("table", "sequence")
                }
        finally:
            await engine.dispose()
        # Children before parents, so that no foreign key refuses a delete.
        ordered = [table.name for table in reversed(Base.metadata.sorted_tables)]
        unknown = set(found["table"]) - set(ordered) - {"alembic_version"}
        assert not unknown, f"tables the models do not know would keep their rows: {unknown}"
        statements = [
            "BEGIN",
            "SET LOCAL lock_timeout = '10s'",  # a leaked transaction fails the test, not hangs
            *(f'DELETE FROM "{schema}"."{name}"' for name in ordered),
            *(f'ALTER SEQUENCE "{schema}"."{name}" RESTART' for name in sorted(found["sequence"])),
            "COMMIT",
        ]
        self._empty_sql = ";\n".join(statements) + ";"
        self.schema = schema


def _schema_engine(url: str, schema: str, **pool: Any) -> AsyncEngine:
    # The service's own engine options (pre-ping included), in a schema of its own.
    return create_engine(url, server_settings={"search_path": schema}, **pool)


async def _admin(url: str, statement: str) -> None:
    admin = create_engine(url, pool_size=1)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()


async def _admin_script(url: str, script: str) -> None:
    """Run several statements in one round trip (asyncpg's simple query protocol)."""
    admin = create_engine(url, pool_size=1)
    try:
        async with admin.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute(script)  # type: ignore[union-attr]
    finally:
        await admin.dispose()
