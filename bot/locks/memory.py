"""In-process keyed locks: one ``asyncio.Lock`` per key, dropped when nobody holds or waits
for it, so memory stays flat however many leads write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.locks.base import Lease, LockTimeout


class MemoryLock:
    """Keyed locks for a single process (the embedded default)."""

    def __init__(self, *, blocking_timeout: float = 30.0) -> None:
        self.blocking_timeout = blocking_timeout
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[Lease]:
        """See :class:`bot.locks.base.KeyedLock`."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            try:
                async with asyncio.timeout(self.blocking_timeout):
                    await lock.acquire()
            except TimeoutError:
                raise LockTimeout(key) from None
            try:
                yield Lease()  # in-process: held until released, never lost
            finally:
                lock.release()
        finally:
            lock_now, users_now = self._locks[key]
            if users_now <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock_now, users_now - 1)

    def __len__(self) -> int:
        """Keys currently held or waited for (for tests of the cleanup)."""
        return len(self._locks)

    async def ping(self) -> None:
        """Always reachable."""

    async def close(self) -> None:
        """Nothing to release."""
