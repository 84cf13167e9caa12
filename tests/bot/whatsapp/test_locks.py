"""The per-lead lock contract, on every backend (memory always; Redis when reachable)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from bot.locks import KeyedLock, LockTimeout, MemoryLock
from bot.locks.redis import RedisLock
from tests.conftest import REDIS_URL, _redis_problem, _unavailable


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
            url, prefix=f"test:{uuid.uuid4().hex}:", timeout=5, blocking_timeout=1.0
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
