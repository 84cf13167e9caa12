"""The keyed lock protocol: ``async with locks.lock(key) as lease: ...`` holds ``key``
exclusively, as long as ``lease.lost`` stays false.

Errors, all :class:`LockUnavailable` ("not now; the work is retried later, never done
unlocked, and it is nobody's failure"): :class:`LockTimeout` (another holder kept it past the
wait) and :class:`LockBackendDown` (the backend, Redis, could not be reached or had no free
connection in time).
"""

from __future__ import annotations

import asyncio
import math
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from dialogs.errors import LeadbotError


class LockUnavailable(LeadbotError):
    """The lock could not be taken now. The work it guards is left as it was (inbox rows
    stay unprocessed and are not charged an attempt) and retried later."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class LockTimeout(LockUnavailable):
    """The lock was not acquired in time; the work is retried later, never done unlocked."""

    def __init__(self, key: str) -> None:
        super().__init__(key, f"could not acquire the lock {key!r} in time")


class LockBackendDown(LockUnavailable):
    """The lock backend did not answer (Redis down, or no pool connection in time)."""

    def __init__(self, key: str, cause: BaseException) -> None:
        super().__init__(
            key, f"lock backend unavailable for {key!r}: {type(cause).__name__}: {cause}"
        )


class Lease:
    """What a holder has while inside ``lock(key)``: the key is ours until ``expires_at``
    (the event loop's clock), pushed forward by each renewal. ``lost`` turns true once a
    renewal finds the key taken by someone else, or could not reach the backend before the
    lease ran out; work done under a lost lease must not be committed (another holder may
    be doing it)."""

    __slots__ = ("_lost", "expires_at")

    def __init__(self, expires_at: float = math.inf) -> None:
        self.expires_at = expires_at
        self._lost = False

    def lose(self) -> None:
        """Mark the lease lost (the renewer found the key gone or taken)."""
        self._lost = True

    def lost_at(self, now: float) -> bool:
        """Whether the lease is lost, or lapsed by ``now`` (the event loop's clock)."""
        return self._lost or now >= self.expires_at

    @property
    def lost(self) -> bool:
        """Whether the lease is lost or has lapsed (read at the event loop's time)."""
        if self._lost:
            return True
        if math.isinf(self.expires_at):
            return False
        return self.lost_at(asyncio.get_running_loop().time())


class KeyedLock(Protocol):
    """Mutual exclusion per key, across every task that shares the backend."""

    def lock(self, key: str) -> AbstractAsyncContextManager[Lease]:
        """Hold ``key`` for the ``async with`` block; raise :class:`LockTimeout` if it cannot
        be had in the backend's blocking timeout, :class:`LockBackendDown` if the backend
        cannot be reached."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot be reached (the health check)."""
        ...

    async def close(self) -> None:
        """Release the backend's resources (connections)."""
        ...
