"""Redis keyed locks (``redis.asyncio`` ``Lock``): serialize a lead's work across processes.

Leases are short (``lease``, 10 s by default) and renewed every third of a lease while the
holder works, so a slow turn (an LLM call) keeps its lock however long it takes, but a holder
that dies (SIGKILL, a lost host) frees it within one lease instead of blocking the
conversation. A renewal that finds the key gone or taken, or that cannot reach Redis before
the lease lapses, marks the :class:`~bot.locks.base.Lease` lost: the holder must not commit.

Connections come from a ``BlockingConnectionPool`` of ``max_connections``: when every
connection is busy a command waits up to ``pool_timeout`` for one instead of raising
``MaxConnectionsError`` (what redis-py 8's default pool does at 100). Releasing is retried a
few times on connection errors; the renewal stops first, so even a release that never gets
through frees the key within one lease. Redis errors while acquiring become
:class:`~bot.locks.base.LockBackendDown`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import LockError, RedisError

from bot.locks.base import Lease, LockBackendDown, LockTimeout

log = logging.getLogger("leadbot.locks")

POLL_SECONDS = 0.02  # how often a waiter retries; redis-py's 0.1 s default adds to each reply
RELEASE_DELAYS = (0.05, 0.2, 0.5, 1.0)  # waits between release tries (then the lease lapses)
CONNECT_TIMEOUT = 2.0  # a blackholed Redis must not hang a turn or the health check
SOCKET_TIMEOUT = 5.0


class RedisLock:
    """Keyed locks in Redis under ``prefix``, with leases renewed while held."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "leadbot:lock:",
        lease: float = 10.0,
        blocking_timeout: float = 30.0,
    ) -> None:
        if lease <= 0:
            raise ValueError("lease must be positive")
        self.client = client
        self.prefix = prefix
        self.lease = lease
        self.blocking_timeout = blocking_timeout

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        max_connections: int = 50,
        pool_timeout: float = 5.0,
        prefix: str = "leadbot:lock:",
        lease: float = 10.0,
        blocking_timeout: float = 30.0,
    ) -> RedisLock:
        """A lock backend with its own bounded, blocking connection pool to ``url``."""
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=SOCKET_TIMEOUT,
            # A few quick retries: Redis being down must fail a turn's lock in well under a
            # second (the sweep retries it), not after redis-py's ten retries.
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries=2),
        )
        return cls(
            aioredis.Redis.from_pool(pool),
            prefix=prefix,
            lease=lease,
            blocking_timeout=blocking_timeout,
        )

    @asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[Lease]:
        """See :class:`bot.locks.base.KeyedLock`."""
        lock = self.client.lock(
            self.prefix + key, timeout=self.lease, sleep=POLL_SECONDS, thread_local=False
        )
        lease = await self._acquire(lock, key)
        renewer = asyncio.create_task(self._renew(lock, key, lease), name=f"lock-renew:{key}")
        try:
            yield lease
        finally:
            renewer.cancel()
            await asyncio.wait([renewer])
            await self._release(lock, key)

    async def _acquire(self, lock: Lock, key: str) -> Lease:
        """Try ``SET NX PX`` until it succeeds or ``blocking_timeout`` passes. The lease is
        counted from just before the attempt that won, so it never outlives Redis's."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.blocking_timeout
        while True:
            attempt = loop.time()
            try:
                if await lock.acquire(blocking=False):
                    return Lease(attempt + self.lease)
            except RedisError as exc:
                raise LockBackendDown(key, exc) from exc
            if loop.time() + POLL_SECONDS > give_up_at:
                raise LockTimeout(key)
            await asyncio.sleep(POLL_SECONDS)  # polling Redis: it has no wake-up for waiters

    async def _renew(self, lock: Lock, key: str, lease: Lease) -> None:
        """Push the lease forward every third of it until cancelled (the holder is done)."""
        loop = asyncio.get_running_loop()
        interval = self.lease / 3
        while True:
            await asyncio.sleep(interval)
            attempt = loop.time()
            try:
                await lock.reacquire()
            except LockError:
                lease.lose()
                log.warning("lock %s: the lease lapsed and the key is gone or taken", key)
                return
            except RedisError as exc:
                if lease.lost_at(loop.time()):
                    lease.lose()
                    log.warning("lock %s: lease lapsed, Redis unreachable: %s", key, exc)
                    return
                log.warning("lock %s: could not renew the lease (retrying): %s", key, exc)
                interval = min(self.lease / 3, 0.5)
                continue
            lease.expires_at = attempt + self.lease
            interval = self.lease / 3

    async def _release(self, lock: Lock, key: str) -> None:
        """Delete the key if it is still ours; retry connection errors a few times."""
        for delay in (*RELEASE_DELAYS, None):
            try:
                await lock.release()
                return
            except LockError:
                return  # the lease lapsed (and someone may hold it now): nothing of ours to free
            except RedisError as exc:
                if delay is None:
                    log.warning(
                        "lock %s: could not release (%s); it lapses within %.0f s",
                        key,
                        exc,
                        self.lease,
                    )
                    return
                await asyncio.sleep(delay)  # backoff before retrying a failed release

    async def ping(self) -> None:
        """Raise if Redis does not answer."""
        await self.client.ping()

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
