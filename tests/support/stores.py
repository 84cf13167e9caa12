"""Scratch stage stores for benchmarks and tests: migrated, empty, and gone afterwards.

On PostgreSQL the tables live in a fresh schema of their own (``search_path``), dropped on
exit, so runs never see each other's rows nor leave any in a shared database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.db import create_engine
from scheduler.migrate import upgrade

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
        # The service's own engine options (pre-ping included), in a schema of its own.
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            server_settings={"search_path": schema},
        )
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        if schema is not None:
            await _admin(url, f'DROP SCHEMA "{schema}" CASCADE')


async def _admin(url: str, statement: str) -> None:
    admin = create_engine(url, pool_size=1)
    try:
        async with admin.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await admin.dispose()
