"""Per-key locks that serialize work on one lead: in-process by default, Redis when
``LEADBOT_REDIS_URL`` is set (several web workers share the inbox)."""

from __future__ import annotations

from bot.locks.base import (
    KeyedLock,
    Lease,
    LockBackendDown,
    LockTimeout,
    LockUnavailable,
)
from bot.locks.memory import MemoryLock

__all__ = [
    "KeyedLock",
    "Lease",
    "LockBackendDown",
    "LockTimeout",
    "LockUnavailable",
    "MemoryLock",
    "build_lock",
]


def build_lock(
    redis_url: str,
    *,
    prefix: str = "leadbot:lock:",
    lease: float = 10.0,
    max_connections: int = 50,
) -> KeyedLock:
    """The lock backend for ``redis_url`` (empty: in-process). ``lease`` and
    ``max_connections`` apply to Redis (see :mod:`bot.locks.redis`)."""
    if not redis_url:
        return MemoryLock()
    from bot.locks.redis import RedisLock

    return RedisLock.from_url(
        redis_url, prefix=prefix, lease=lease, max_connections=max_connections
    )
