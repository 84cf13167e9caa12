"""The per-lead lock contract, on every backend (memory always; Redis when reachable)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio.lock import Lock
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.locks import KeyedLock, Lease, LockBackendDown, LockTimeout, MemoryLock, build_lock
from bot.locks.redis import RedisLock
from tests.conftest import REDIS_URL, _redis_problem, _unavailable
from tests.support.fakes.tcp import closed_port


@pytest.fixture(params=["memory", "redis"])
async def locks(request: pytest.FixtureRequest) -> AsyncIterator[KeyedLock]:
    if request.param == "memory":
        backend: KeyedLock = MemoryLock(blocking_timeout=1.0)
    else:
        problem = await _redis_problem()  # the `redis_url` fixture's check, callable here
        if problem:
            _unavailable("Redis", problem)
        url = REDIS_URL
        # A unique prefix per test: tests never see each other's keys, and no FLUSHDB.
        backend = RedisLock.from_url(
            url, prefix=f"test:{uuid.uuid4().hex}:", lease=5, blocking_timeout=1.0
        )
    yield backend
    await backend.close()


async def test_one_holder_per_key(locks: KeyedLock) -> None:
    inside = 0
    most = 0

    async def worker() -> None:
        nonlocal inside, most
        async with locks.lock("lead:1"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)  # yield to the others while holding the lock
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(worker() for _ in range(10)))
    assert most == 1


async def test_different_keys_do_not_block_each_other(locks: KeyedLock) -> None:
    async with locks.lock("lead:1"):
        async with asyncio.timeout(2):
            async with locks.lock("lead:2"):
                pass


async def test_a_held_key_times_out_for_a_waiter(locks: KeyedLock) -> None:
    held = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.lock("lead:9"):
            held.set()
            await release.wait()

    task = asyncio.create_task(holder())
    await held.wait()
    with pytest.raises(LockTimeout):
        async with locks.lock("lead:9"):
            pass
    release.set()
    await task
    async with locks.lock("lead:9"):  # free again after the holder left
        pass


async def test_an_error_inside_releases_the_lock(locks: KeyedLock) -> None:
    with pytest.raises(RuntimeError):
        async with locks.lock("lead:3"):
            raise RuntimeError("boom")
    async with asyncio.timeout(2):
        async with locks.lock("lead:3"):
            pass


async def test_memory_locks_are_cleaned_up() -> None:
    locks = MemoryLock()
    async with locks.lock("a"):
        assert len(locks) == 1
    assert len(locks) == 0


# -- Redis: short leases renewed while held, a bounded blocking pool, retried releases --------


@pytest.fixture
async def redis_locks() -> AsyncIterator[Callable[..., RedisLock]]:
    """Make Redis lock backends on the test server, each under a prefix of its own."""
    problem = await _redis_problem()
    if problem:
        _unavailable("Redis", problem)
    made: list[RedisLock] = []
    prefix = f"test:{uuid.uuid4().hex}:"

    def make(**kwargs: Any) -> RedisLock:
        kwargs.setdefault("prefix", prefix)
        backend = RedisLock.from_url(REDIS_URL, **kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        await backend.close()


def _renewer(key: str) -> asyncio.Task[Any]:
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == f"lock-renew:{key}"]
    return task


async def test_a_live_holder_keeps_its_key_past_the_lease(
    redis_locks: Callable[..., RedisLock],
) -> None:
    locks = redis_locks(lease=1.0, blocking_timeout=3.5)
    loop = asyncio.get_running_loop()
    async with locks.lock("lead:long") as lease:
        # A turn over three leases long (an LLM call): another worker waits out its whole
        # blocking timeout and never gets the key, because the holder renews it.
        started = loop.time()
        with pytest.raises(LockTimeout):
            async with locks.lock("lead:long"):
                pass
        assert loop.time() - started > 3.0  # more than three leases
        assert not lease.lost


async def test_a_holder_that_stops_renewing_frees_the_key_within_one_lease(
    redis_locks: Callable[..., RedisLock],
) -> None:
    locks = redis_locks(lease=0.5, blocking_timeout=5.0)
    loop = asyncio.get_running_loop()
    holding, done = asyncio.Event(), asyncio.Event()
    leases: list[Lease] = []

    async def holder() -> None:
        async with locks.lock("lead:dead") as lease:
            leases.append(lease)
            holding.set()
            await done.wait()

    task = asyncio.create_task(holder())
    await holding.wait()
    died = loop.time()
    _renewer("lead:dead").cancel()  # simulated death: no more renewals, no release
    async with locks.lock("lead:dead"):
        waited = loop.time() - died
        assert waited <= 0.5 + 0.5  # one lease, and some slack for a busy machine
        assert leases[0].lost
    done.set()
    await task  # the dead holder's late release must not free someone else's key


_HOLD_AND_DIE = """
import asyncio, sys
from bot.locks.redis import RedisLock

async def main():
    locks = RedisLock.from_url(sys.argv[1], prefix=sys.argv[2], lease=1.0)
    async with locks.lock("lead:killed"):
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_killed_workers_lock_lapses_within_one_lease(
    redis_locks: Callable[..., RedisLock],
) -> None:
    locks = redis_locks(lease=1.0, blocking_timeout=10.0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLD_AND_DIE,
        REDIS_URL,
        locks.prefix,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            assert (await proc.stdout.readline()).strip() == b"held"
        proc.kill()
        await proc.wait()
        loop = asyncio.get_running_loop()
        killed = loop.time()
        async with locks.lock("lead:killed"):
            assert loop.time() - killed <= 1.0 + 0.5  # not the old 60 s lease
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_tiny_pool_serves_many_concurrent_holders(
    redis_locks: Callable[..., RedisLock],
) -> None:
    locks = redis_locks(max_connections=2, pool_timeout=10.0, blocking_timeout=20.0)
    done = 0

    async def user(i: int) -> None:
        nonlocal done
        async with locks.lock(f"lead:{i % 40}"):
            await asyncio.sleep(0)
        done += 1

    await asyncio.gather(*(user(i) for i in range(200)))
    assert done == 200
    assert await locks.client.keys(locks.prefix + "*") == []  # every lock was released


async def test_the_default_pool_waits_instead_of_failing_under_a_flood(redis_url: str) -> None:
    # redis-py 8's default asyncio pool raises MaxConnectionsError past 100 connections.
    prefix = f"test:{uuid.uuid4().hex}:"
    locks = build_lock(redis_url, prefix=prefix)
    try:
        await asyncio.gather(*(_hold(locks, f"lead:{i}") for i in range(300)))
        assert isinstance(locks, RedisLock)
        assert await locks.client.keys(prefix + "*") == []
    finally:
        await locks.close()


async def _hold(locks: KeyedLock, key: str) -> None:
    async with locks.lock(key):
        await asyncio.sleep(0)


async def test_a_release_that_hits_a_connection_error_is_retried(
    redis_locks: Callable[..., RedisLock], monkeypatch: pytest.MonkeyPatch
) -> None:
    locks = redis_locks()
    real_release = Lock.do_release
    failures = 0

    async def flaky_release(self: Lock, expected_token: bytes) -> None:
        nonlocal failures
        if failures < 2:
            failures += 1
            raise RedisConnectionError("Too many connections")
        await real_release(self, expected_token)

    monkeypatch.setattr(Lock, "do_release", flaky_release)
    async with locks.lock("lead:release"):
        pass
    assert failures == 2
    assert await locks.client.exists(locks.prefix + "lead:release") == 0


async def test_redis_down_is_a_backend_error_not_a_hang() -> None:
    locks = RedisLock.from_url(f"redis://127.0.0.1:{closed_port()}/15", prefix="test:down:")
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(LockBackendDown):
            async with locks.lock("lead:1"):
                pass
        with pytest.raises(RedisConnectionError):
            await locks.ping()
        assert loop.time() - started < 5
    finally:
        await locks.close()
