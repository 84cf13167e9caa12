"""The Alembic history builds exactly the schema the models describe, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.store.migrate import alembic_config, current_revision, head_revision, upgrade
from scheduler.store.models import Base

# Alembic from an empty database in each test, not the session's already migrated store.
pytestmark = pytest.mark.fresh_store
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


async def test_migrated_schema_matches_the_models(engine: AsyncEngine) -> None:
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []
    assert await current_revision(engine) == head_revision()


async def test_upgrade_is_idempotent(engine: AsyncEngine) -> None:
    await upgrade(engine)
    assert await current_revision(engine) == head_revision()


async def test_upgrading_to_the_console_keeps_every_row_that_hangs_on_a_lead(
    engine: AsyncEngine,
) -> None:
    """0012 adds columns to ``leads``: a copy-and-move of the table on SQLite would drop it,
    and with foreign keys on that deletes every row cascading from a lead."""

    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0011_users")

    async with engine.begin() as connection:
        await connection.run_sync(downgrade)
        await connection.execute(
            text(
                "INSERT INTO leads (id, token, email, attribution, stage, version, bot_paused, "
                "created_at, updated_at) VALUES (1, 't1', 'a@acme.com', '{}', 'new', 1, false, "
                ":now, :now)"
            ),
            {"now": NOW},
        )
        for table, columns in [
            ("stage_events", "(lead_id, to_stage, actor, at) VALUES (1, 'new', 'x', :now)"),
            (
                "messages",
                "(lead_id, channel, direction, body, payload, created_at) "
                "VALUES (1, 'whatsapp', 'in', 'hi', '{}', :now)",
            ),
            (
                "contact_points",
                "(lead_id, kind, value, created_at) VALUES (1, 'email', 'a@acme.com', :now)",
            ),
        ]:
            await connection.execute(text(f"INSERT INTO {table} {columns}"), {"now": NOW})
    await upgrade(engine)
    async with engine.connect() as connection:
        for table in ("stage_events", "messages", "contact_points"):
            count = await connection.scalar(text(f"SELECT count(*) FROM {table}"))
            assert count == 1, table
