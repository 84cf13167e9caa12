"""Lock trouble is nobody's failure: Redis down, a lease lost mid-turn, rows another worker
handled meanwhile leave the inbox rows uncharged and answered later, exactly once; recovery
never splits a burst another live worker is collecting; /healthz names what is down."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool
from sqlalchemy import update

from bot.http.appkeys import ENGINE
from bot.locks import Lease, MemoryLock
from bot.locks.redis import RedisLock
from bot.whatsapp.envelope import parse_envelope
from bot.whatsapp.ingest import ingest
from bot.whatsapp.keys import INBOX, LOCKS
from scheduler.store.models import InboxItem, utcnow
from tests.bot.whatsapp.conftest import (
    MakeClient,
    inbox_rows,
    post,
    replies,
    settle,
    text_body,
)
from tests.support.fakes.tcp import TcpForwarder


def _phone() -> str:
    """A number of its own: Redis db 15 is shared by concurrent test runs."""
    return f"1415555{random.randrange(100, 200):04d}"


async def test_redis_down_is_reported_and_turns_wait_uncharged_until_it_is_back(
    make_client: MakeClient, redis_url: str
) -> None:
    target = urlsplit(redis_url)
    redis = TcpForwarder(target.hostname or "127.0.0.1", target.port or 6379)  # not started
    phone = _phone()
    client, _ = await make_client(
        redis_url=f"redis://127.0.0.1:{redis.port}/15",
        lock_lease_seconds=5,
        redis_max_connections=3,
    )
    try:
        locks = client.app[LOCKS]
        assert isinstance(locks, RedisLock) and locks.lease == 5
        pool = locks.client.connection_pool
        assert isinstance(pool, BlockingConnectionPool) and pool.max_connections == 3
        health = await client.get("/healthz")
        assert health.status == 503
        assert await health.json() == {"status": "unavailable", "database": "ok", "redis": "down"}

        assert (await post(client, text_body(phone, "wamid.NOREDIS", "hi"))).status == 200
        await settle(client)  # the turn could not take its lock
        (row,) = await inbox_rows(client)
        assert (row.processed_at, row.attempts, row.error) == (None, 0, None)
        assert await replies(client, f"+{phone}") == []
        assert client.app[INBOX].stats.failures == 0

        await redis.start()  # Redis is back, at the same address
        health = await client.get("/healthz")
        assert health.status == 200
        assert await health.json() == {"status": "ok", "database": "ok", "redis": "ok"}
        assert await client.app[INBOX].sweep(utcnow() + timedelta(minutes=1)) == 1
        await settle(client)
        assert len(await replies(client, f"+{phone}")) == 1
        (row,) = await inbox_rows(client)
        assert row.processed_at is not None and (row.attempts, row.error) == (0, None)
    finally:
        await client.close()
        await redis.stop()


class _LosingLock(MemoryLock):
    """A lock whose lease the test can take away while the turn runs."""

    def __init__(self) -> None:
        super().__init__()
        self.leases: list[Lease] = []

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[Lease]:
        async with super().lock(key):
            lease = Lease()
            self.leases.append(lease)
            yield lease


class _Interpreter:
    """The real interpreter, with something done before its first call."""

    def __init__(self, real: Any, before: Any) -> None:
        self.real, self.before = real, before

    async def interpret(self, *args: Any) -> Any:
        before, self.before = self.before, None
        if before is not None:
            await before()
        return await self.real.interpret(*args)


async def test_a_turn_that_lost_its_lease_commits_nothing_and_charges_nothing(
    make_client: MakeClient,
) -> None:
    client, _ = await make_client()
    processor = client.app[INBOX]
    locks = _LosingLock()
    processor.locks = locks

    async def lose_the_lease() -> None:  # the LLM call outlived the lease, renewal failed
        locks.leases[-1].lose()

    working = processor.dialogs
    processor.dialogs = dataclasses.replace(
        working, interpreter=_Interpreter(working.interpreter, lose_the_lease)
    )
    phone = _phone()
    assert (await post(client, text_body(phone, "wamid.LOST", "hello"))).status == 200
    await settle(client)
    (row,) = await inbox_rows(client)
    assert (row.processed_at, row.attempts, row.error) == (None, 0, None)
    assert await replies(client, f"+{phone}") == []
    assert processor.stats.failures == 0

    assert await processor.sweep(utcnow() + timedelta(minutes=1)) == 1  # a later turn
    await settle(client)
    assert len(await replies(client, f"+{phone}")) == 1


async def test_rows_another_worker_handled_meanwhile_are_not_charged(
    make_client: MakeClient,
) -> None:
    # Two workers whose locks do not exclude each other (one's lease lapsed): A loads the
    # first message; B loads it and a second one; A commits first, B's commit finds a row
    # taken. The second message never failed: it is answered, not charged an attempt.
    a, _ = await make_client()
    b, _ = await make_client()
    gates: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}
    for name, client in (("a", a), ("b", b)):
        entered, go = asyncio.Event(), asyncio.Event()
        gates[name] = (entered, go)

        async def gate(entered: asyncio.Event = entered, go: asyncio.Event = go) -> None:
            entered.set()
            await go.wait()

        working = client.app[INBOX].dialogs
        client.app[INBOX].dialogs = dataclasses.replace(
            working, interpreter=_Interpreter(working.interpreter, gate)
        )
    phone = _phone()
    assert (await post(a, text_body(phone, "wamid.TAKEN1", "hi"))).status == 200
    await asyncio.wait_for(gates["a"][0].wait(), 10)  # A is planning a turn of message 1
    assert (await post(b, text_body(phone, "wamid.TAKEN2", "we need an app"))).status == 200
    await asyncio.wait_for(gates["b"][0].wait(), 10)  # B is planning messages 1 and 2
    gates["a"][1].set()
    await settle(a)
    gates["b"][1].set()
    await settle(b)

    first, second = await inbox_rows(b)
    assert first.processed_at is not None and second.processed_at is not None
    assert (second.attempts, second.error) == (0, None)
    assert b.app[INBOX].stats.failures == 0
    assert len(await replies(b, f"+{phone}")) == 2  # A's turn, then B's turn of message 2


async def test_startup_recovery_leaves_a_live_burst_to_its_worker(
    make_client: MakeClient,
) -> None:
    live, _ = await make_client(burst_window_ms=300)
    starting, _ = await make_client(burst_window_ms=300)
    phone = _phone()
    assert (await post(live, text_body(phone, "wamid.BURST1", "hi"))).status == 200
    # Another worker starts while the live one is still collecting the burst...
    await starting.app[INBOX].recover()
    # ...which goes on: the prospect's second message, inside the burst window.
    assert (await post(live, text_body(phone, "wamid.BURST2", "we need an app"))).status == 200
    await settle(live)
    await settle(starting)
    sent = await replies(live, f"+{phone}")
    assert len(sent) == 1  # one burst, one turn, one reply
    assert live.app[INBOX].stats.turns == 1
    assert starting.app[INBOX].stats.turns == 0
    assert all(r.processed_at is not None for r in await inbox_rows(live))


async def test_the_sweep_leaves_a_live_burst_to_its_worker(make_client: MakeClient) -> None:
    # An earlier message of this prospect failed once and waits for its retry; they write
    # again, and a worker is collecting that burst when another worker's sweep runs.
    live, _ = await make_client(burst_window_ms=300)
    sweeper, _ = await make_client(burst_window_ms=300)
    phone = _phone()
    body = text_body(phone, "wamid.RETRY0", "hello?")
    await ingest(live.app[ENGINE], parse_envelope(body), utcnow() - timedelta(minutes=5))
    async with live.app[ENGINE].begin() as connection:
        await connection.execute(update(InboxItem).values(attempts=1, error="RuntimeError: x"))
    assert (await post(live, text_body(phone, "wamid.RETRY1", "hi"))).status == 200
    assert await sweeper.app[INBOX].sweep(utcnow()) == 0  # they are writing: not now
    assert (await post(live, text_body(phone, "wamid.RETRY2", "we need an app"))).status == 200
    await settle(live)
    await settle(sweeper)
    assert live.app[INBOX].stats.turns == 1  # the retry and the burst: one turn
    assert sweeper.app[INBOX].stats.turns == 0
    assert len(await replies(live, f"+{phone}")) == 1
    assert all(r.processed_at is not None for r in await inbox_rows(live))
