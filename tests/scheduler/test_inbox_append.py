"""Messages appended to the inbox: stored as the ORM reads them, once; the appender keeps its
Postgres connection between batches that come close together. Every test runs on both
paths: the driver connection (the fast path) and SQLAlchemy Core (its fallback), which
store the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from scheduler.store import inbox_driver, sqlite_inline
from scheduler.store.engine import create_engine
from scheduler.store.inbox import InboxAppender, Received, append
from scheduler.store.models import InboxItem

NOW = datetime(2026, 3, 2, 9, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True, params=["driver", "core"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which path appends: the driver connection, or Core (as when the driver's is unusable)."""
    if request.param == "core":
        monkeypatch.setattr(inbox_driver, "usable", lambda connection: False)
    return str(request.param)


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


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _PoolLog:
    """The pool's checkouts and checkins on ``engine``, as they happen."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.events: list[str] = []
        self.engine = engine.sync_engine
        event.listen(self.engine, "checkout", self._checkout)
        event.listen(self.engine, "checkin", self._checkin)

    def _checkout(self, *_: Any) -> None:
        self.events.append("out")

    def _checkin(self, *_: Any) -> None:
        self.events.append("in")

    def remove(self) -> None:
        event.remove(self.engine, "checkout", self._checkout)
        event.remove(self.engine, "checkin", self._checkin)


@pytest.fixture
def pool_log(engine: AsyncEngine) -> Iterator[_PoolLog]:
    log = _PoolLog(engine)
    yield log
    log.remove()


async def _append_with(appender: InboxAppender, *ids: str) -> set[str]:
    messages = [Received(i, "+1", {}) for i in ids]
    return await greenlet_spawn(appender.append, "whatsapp", messages, NOW)


async def test_an_appender_keeps_its_postgres_connection_while_batches_keep_coming(
    engine: AsyncEngine, pool_log: _PoolLog
) -> None:
    clock = _Clock()
    appender = InboxAppender(engine.sync_engine, keep_for=5.0, clock=clock)

    for i in range(3):
        assert await _append_with(appender, f"wamid.{i}") == {f"wamid.{i}"}
        clock.now += 4.0

    if engine.dialect.name == "postgresql":
        assert pool_log.events == ["out"]  # one checkout (one ping) for the three batches
    else:  # the service's only connection: never kept from the others
        assert pool_log.events == ["out", "in"] * 3
    await greenlet_spawn(appender.close)
    assert pool_log.events[-1] == "in"
    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]


@pytest.mark.parametrize("engine", ["postgres"], indirect=True)  # SQLite's is never kept
async def test_a_connection_idle_for_longer_goes_back_and_the_next_batch_takes_one_afresh(
    engine: AsyncEngine, pool_log: _PoolLog
) -> None:
    clock = _Clock()
    appender = InboxAppender(engine.sync_engine, keep_for=5.0, clock=clock)

    await _append_with(appender, "wamid.1")
    clock.now += 5.5
    assert await _append_with(appender, "wamid.2") == {"wamid.2"}

    assert pool_log.events == ["out", "in", "out"]
    await greenlet_spawn(appender.close)


async def test_a_failed_batch_drops_the_kept_connection_and_the_next_one_works(
    engine: AsyncEngine, pool_log: _PoolLog
) -> None:
    appender = InboxAppender(engine.sync_engine, keep_for=60.0, clock=_Clock())
    await _append_with(appender, "wamid.1")
    bad = Received("wamid.bad", None, {})  # type: ignore[arg-type]  # sender is NOT NULL

    with pytest.raises(Exception, match="(?i)not null|null value"):
        await greenlet_spawn(appender.append, "whatsapp", [bad], NOW)

    assert engine.sync_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await _append_with(appender, "wamid.2") == {"wamid.2"}
    assert [r.external_id for r in await _stored(engine)] == ["wamid.1", "wamid.2"]
    await greenlet_spawn(appender.close)


async def test_each_backend_takes_the_path_asked_for(engine: AsyncEngine, path: str) -> None:
    appender = InboxAppender(engine.sync_engine)
    assert await _append_with(appender, "wamid.1") == {"wamid.1"}
    await greenlet_spawn(appender.close)

    assert appender.on_driver is (path == "driver")


_ROW = ("external_id", "sender", "payload", "received_at", "attempts", "processed_at", "error")


@pytest.mark.parametrize("path", ["driver"], indirect=True)  # compares itself with Core
async def test_the_driver_path_stores_exactly_the_rows_core_stores(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = [
        [
            Received("w.1", "+1", {"t": "héllo 👋", "n": [1, 2.5, None], "b": True}),
            Received("w.2", "+2", {}),
        ],
        [
            Received("w.2", "+2", {"again": 1}),
            Received("w.3", "+3", {"k": {"x": "y"}}),
            Received("w.3", "+3", {"twice": 1}),
        ],
    ]
    new = {}
    for channel in ("driver", "core"):
        appender = InboxAppender(engine.sync_engine)
        if channel == "core":
            monkeypatch.setattr(inbox_driver, "usable", lambda connection: False)
        new[channel] = [
            await greenlet_spawn(appender.append, channel, batch, NOW) for batch in batches
        ]
        await greenlet_spawn(appender.close)
        assert appender.on_driver is (channel == "driver")

    stored = {
        c: [tuple(getattr(r, k) for k in _ROW) for r in await _stored(engine) if r.channel == c]
        for c in ("driver", "core")
    }
    assert new["driver"] == new["core"] == [{"w.1", "w.2"}, {"w.3"}]
    assert stored["driver"] == stored["core"]
    assert len(stored["core"]) == 3


@pytest.mark.parametrize("path", ["driver"], indirect=True)
async def test_sqlite_on_aiosqlites_thread_appends_through_core(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_inline, "available", lambda: False)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'thread.db'}")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(InboxItem.__table__.create)  # type: ignore[attr-defined]
        appender = InboxAppender(engine.sync_engine)

        assert await _append_with(appender, "wamid.1", "wamid.2") == {"wamid.1", "wamid.2"}
        assert await _append_with(appender, "wamid.2") == set()

        assert appender.on_driver is False
        assert [r.external_id for r in await _stored(engine)] == ["wamid.1", "wamid.2"]
    finally:
        await engine.dispose()
