"""Redis keyed locks (``redis.asyncio`` ``Lock``): serialize a lead's work across processes.

``timeout`` is the lease: a process that dies holding a lock frees it after that long, so it
must exceed the longest turn (an LLM call included). ``blocking_timeout`` bounds the wait.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import redis.asyncio as aioredis
from redis.exceptions import LockError

from bot.locks.base import LockTimeout

POLL_SECONDS = 0.02  # how often a waiter retries; redis-py's 0.1 s default adds to each reply


class RedisLock:
    """Keyed locks in Redis under ``prefix``."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "leadbot:lock:",
        timeout: float = 60.0,
        blocking_timeout: float = 30.0,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.blocking_timeout = blocking_timeout

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> RedisLock:
        """A lock backend with its own connection pool to ``url``."""
        return cls(aioredis.from_url(url), **kwargs)  # type: ignore[arg-type]

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """See :class:`bot.locks.base.KeyedLock`."""
        lock = self.client.lock(
            self.prefix + key,
            timeout=self.timeout,
            blocking_timeout=self.blocking_timeout,
            sleep=POLL_SECONDS,
        )
        if not await lock.acquire():
            raise LockTimeout(key)
        try:
            yield
        finally:
            # LockError: the lease ran out and someone else may hold it: nothing of ours to free.
            with suppress(LockError):
                await lock.release()

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
