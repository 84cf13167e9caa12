"""Messages appended on the driver connection: stored as the ORM reads them, once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from scheduler.inbox_append import Received, append
from scheduler.models import InboxItem

NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


async def _append(
    engine: AsyncEngine, messages: list[Received], channel: str = "whatsapp"
) -> set[str]:
    return await greenlet_spawn(append, engine.sync_engine, channel, messages, NOW)


async def _stored(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(InboxItem).order_by(InboxItem.id))).all())


async def test_messages_are_stored_with_their_types_and_the_new_ones_returned(
    engine: AsyncEngine,
) -> None:
    payloads = [
        {"text": "héllo \"quoted\" 'single' \\ back 👋", "n": 1, "nested": {"a": [1, None]}},
        {"empty": {}},
        {},
    ]
    messages = [Received(f"wamid.{i}", f"+4915{i}", p) for i, p in enumerate(payloads)]

    assert await _append(engine, messages) == {"wamid.0", "wamid.1", "wamid.2"}

    stored = await _stored(engine)
    assert [(r.external_id, r.sender, r.payload) for r in stored] == [
        (m.external_id, m.sender, m.payload) for m in messages
    ]
    assert {(r.channel, r.attempts, r.processed_at, r.error) for r in stored} == {
        ("whatsapp", 0, None, None)
    }
    assert {r.received_at for r in stored} == {NOW}  # read back as the same aware datetime


async def test_messages_already_stored_are_left_alone_and_not_returned(
    engine: AsyncEngine,
) -> None:
    await _append(engine, [Received("wamid.old", "+1", {"v": "first"})])

    new = await _append(
        engine,
        [
            Received("wamid.old", "+1", {"v": "again"}),
            Received("wamid.new", "+2", {"v": "new"}),
            Received("wamid.new", "+2", {"v": "twice in one batch"}),
        ],
    )

    assert new == {"wamid.new"}
    stored = await _stored(engine)
    assert [(r.external_id, r.payload) for r in stored] == [
        ("wamid.old", {"v": "first"}),
        ("wamid.new", {"v": "new"}),
    ]


async def test_the_same_id_on_another_channel_is_another_message(engine: AsyncEngine) -> None:
    await _append(engine, [Received("id.1", "+1", {})], channel="whatsapp")

    assert await _append(engine, [Received("id.1", "+1", {})], channel="sandbox") == {"id.1"}


async def test_an_empty_batch_stores_nothing(engine: AsyncEngine) -> None:
    assert await _append(engine, []) == set()
    assert await _stored(engine) == []


async def test_a_failing_batch_stores_none_of_its_messages_and_the_next_one_goes_through(
    engine: AsyncEngine,
) -> None:
    good = Received("wamid.good", "+1", {})
    bad = Received("wamid.bad", None, {})  # type: ignore[arg-type]  # sender is NOT NULL

    with pytest.raises(Exception, match="(?i)not null|null value"):
        await _append(engine, [good, bad])

    assert await _stored(engine) == []  # the good one was rolled back with the bad one
    assert await _append(engine, [good]) == {"wamid.good"}  # a working connection again
    assert [r.external_id for r in await _stored(engine)] == ["wamid.good"]
