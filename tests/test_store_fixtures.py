"""The ``engine`` fixture migrates once per session and still gives every test an empty store
whose ids start at 1 (tests/support/stores.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.store.engine import create_engine, session_factory
from scheduler.store.migrate import current_revision, head_revision
from scheduler.store.models import Lead, Rep
from tests.conftest import POSTGRES_URL
from tests.support.stores import SharedSchema, SQLiteTemplate

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


async def _add_lead_and_rep(engine: AsyncEngine) -> tuple[int, int]:
    async with session_factory(engine).begin() as session:
        rep = Rep(name="Rita", email="rita@seller.com", active=True)
        lead = Lead(token="t-1", attribution={}, created_at=NOW, updated_at=NOW)
        session.add_all([rep, lead])
        await session.flush()
        return lead.id, rep.id


async def _counts(engine: AsyncEngine) -> tuple[int, int]:
    async with engine.connect() as connection:
        leads = await connection.scalar(select(func.count()).select_from(Lead))
        reps = await connection.scalar(select(func.count()).select_from(Rep))
    return int(leads or 0), int(reps or 0)


@pytest.mark.parametrize("turn", [1, 2, 3])
async def test_each_test_starts_empty_with_ids_from_one(engine: AsyncEngine, turn: int) -> None:
    """Three tests in a row on each backend: each finds nothing the one before wrote."""
    assert await _counts(engine) == (0, 0)
    assert await _add_lead_and_rep(engine) == (1, 1)
    assert await current_revision(engine) == head_revision()


async def test_copies_of_the_sqlite_template_are_apart(tmp_path: Path) -> None:
    template = SQLiteTemplate(tmp_path / "template")
    (tmp_path / "template").mkdir()
    first = create_engine(await template.copy(tmp_path / "a.db"))
    try:
        assert await _add_lead_and_rep(first) == (1, 1)
    finally:
        await first.dispose()
    second = create_engine(await template.copy(tmp_path / "b.db"))
    try:
        assert await _counts(second) == (0, 0)
        assert await current_revision(second) == head_revision()
    finally:
        await second.dispose()


async def _schemas(prefix: str) -> set[str]:
    admin = create_engine(POSTGRES_URL, pool_size=1)
    try:
        async with admin.connect() as connection:
            rows = await connection.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                {"p": f"{prefix}\\_%"},
            )
            return set(rows.scalars())
    finally:
        await admin.dispose()


# Postgres only (SQLite tests get copies); the fixture checks that the server is there.
@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
async def test_the_shared_schema_is_emptied_and_replaced_when_it_cannot_be(
    engine: AsyncEngine,
) -> None:
    """Emptied: no rows, ids from 1. A test that broke the schema fails with a clear error
    and the next user gets a newly migrated schema; every schema is dropped at the end."""
    prefix = "lbselftest"
    shared = SharedSchema(POSTGRES_URL, prefix=prefix)
    try:
        db = await shared.engine(pool_size=2)
        first_schema = shared.schema
        await _add_lead_and_rep(db)
        await db.dispose()
        await shared.empty()

        db = await shared.engine(pool_size=2)
        assert shared.schema == first_schema  # migrated once
        assert await _counts(db) == (0, 0)
        assert await _add_lead_and_rep(db) == (1, 1)
        async with db.begin() as connection:
            await connection.execute(text("DROP TABLE stage_events"))
        await db.dispose()
        with pytest.raises(RuntimeError, match="fresh_store"):
            await shared.empty()

        db = await shared.engine(pool_size=2)
        assert shared.schema not in (None, first_schema)
        assert await current_revision(db) == head_revision()
        assert await _counts(db) == (0, 0)
        await db.dispose()
        assert len(await _schemas(prefix)) == 2
    finally:
        await shared.drop()
    assert await _schemas(prefix) == set()
