"""A batch of rows as one statement: stored as the ORM reads them, conflicts ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduler.bulk_insert import BulkInsert
from scheduler.models import InboxItem

NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)
INBOX = cast(Table, InboxItem.__table__)
APPEND = BulkInsert(
    INBOX,
    columns=("external_id", "sender", "payload", "attempts"),
    constants=("channel", "received_at"),
    conflict=("channel", "external_id"),
    returning=("external_id",),
)


async def _append(engine: AsyncEngine, rows: list[tuple[Any, ...]]) -> set[str]:
    dialect = engine.dialect.name
    parameters = APPEND.parameters(dialect, rows, channel="whatsapp", received_at=NOW)
    async with engine.begin() as connection:
        result = await connection.execute(APPEND.statement(dialect), parameters)
        return set(result.scalars())


async def test_rows_are_stored_with_their_types_and_new_ones_returned(
    engine: AsyncEngine,
) -> None:
    documents = [
        {"text": "héllo \"quoted\" 'single' \\ back", "n": 1, "nested": {"a": [1, None]}},
        {"empty": {}},
        {},
    ]
    rows = [(f"wamid.{i}", f"+4915{i}", doc, i) for i, doc in enumerate(documents)]

    assert await _append(engine, rows) == {"wamid.0", "wamid.1", "wamid.2"}

    async with engine.connect() as connection:
        stored = (await connection.execute(select(InboxItem).order_by(InboxItem.id))).all()
    assert [(r.external_id, r.sender, r.payload, r.attempts) for r in stored] == rows
    assert {r.channel for r in stored} == {"whatsapp"}
    # The constant went through its column's type: read back as the same aware datetime.
    assert {r.received_at for r in stored} == {NOW}
    assert all(r.processed_at is None for r in stored)


async def test_conflicting_rows_are_ignored_and_not_returned(engine: AsyncEngine) -> None:
    await _append(engine, [("wamid.old", "+1", {"v": "first"}, 0)])

    new = await _append(
        engine, [("wamid.old", "+1", {"v": "again"}, 0), ("wamid.new", "+2", {}, 0)]
    )

    assert new == {"wamid.new"}
    async with engine.connect() as connection:
        payload = await connection.scalar(
            select(InboxItem.payload).where(InboxItem.external_id == "wamid.old")
        )
    assert payload == {"v": "first"}  # the first delivery stays as it was


async def test_an_empty_batch_inserts_nothing(engine: AsyncEngine) -> None:
    assert await _append(engine, []) == set()


def test_wrong_constants_and_unsupported_row_columns_are_refused() -> None:
    with pytest.raises(TypeError, match="constants must be exactly: channel, received_at"):
        APPEND.parameters("sqlite", [], channel="whatsapp")
    with pytest.raises(TypeError, match="inbox.received_at"):
        BulkInsert(INBOX, columns=("received_at",), conflict=("channel", "external_id"))
