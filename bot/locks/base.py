"""The keyed lock protocol: ``async with locks.lock(key): ...`` holds ``key`` exclusively."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol


class LockTimeout(Exception):
    """The lock was not acquired in time; the work is retried later, never done unlocked."""

    def __init__(self, key: str) -> None:
        super().__init__(f"could not acquire the lock {key!r} in time")
        self.key = key


class KeyedLock(Protocol):
    """Mutual exclusion per key, across every task that shares the backend."""

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold ``key`` for the ``async with`` block; raise :class:`LockTimeout` if it cannot
        be had in the backend's blocking timeout."""
        ...

    async def close(self) -> None:
        """Release the backend's resources (connections)."""
        ...
