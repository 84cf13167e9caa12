"""Throughput shaping for a provider with a per-number rate: a token bucket and a pause.

WhatsApp allows a registered number about 80 messages a second (inbound and outbound
together) and answers 130429 beyond it. We stay under the rate with :class:`TokenBucket`
and, when the provider says we are throttled anyway, stop sending on the whole number for
a while with :class:`Pause`, backing off further while throttling goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from dialogs.errors import LeadbotError

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class RateLimited(LeadbotError):
    """Waiting for a send slot would take longer than the caller accepts."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limit: next slot in {wait:.2f}s")
        self.wait = wait


class TokenBucket:
    """At most ``rate`` acquisitions a second on average, bursts of up to ``burst``.

    Each caller reserves a slot at once (the balance may go negative) and sleeps until its
    slot comes, so waiting callers are served in arrival order without a lock.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        max_wait: float = 5.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    async def acquire(self) -> None:
        """Wait for a slot; raise :class:`RateLimited` (taking nothing) if it is too far."""
        self._refill()
        wait = (1 - self._tokens) / self.rate if self._tokens < 1 else 0.0
        if wait > self.max_wait:
            raise RateLimited(wait)
        self._tokens -= 1
        if wait > 0:
            await self._sleep(wait)


class Pause:
    """A stop on all sending after the provider throttled us, doubling while it goes on.

    ``trip`` starts (or extends) the pause and returns its length; ``reset`` after a
    successful send brings the next pause back to ``initial``.
    """

    def __init__(
        self, *, initial: float = 1.0, maximum: float = 60.0, clock: Clock = time.monotonic
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self._clock = clock
        self._next = initial
        self._until = 0.0
        self._episodes = 0

    def remaining(self) -> float:
        """Seconds until sending may resume (0 when not paused)."""
        return max(0.0, self._until - self._clock())

    @property
    def episode(self) -> int:
        """How many pauses have started: a request notes it when it leaves."""
        return self._episodes

    def trip(self, at_least: float = 0.0, *, sent_in: int | None = None) -> float:
        """Pause sending; return for how long.

        ``sent_in`` is the :attr:`episode` when the throttled request left. Requests already in
        flight when a pause began come back throttled too, all at once: they belong to that
        pause and do not double it again (only a throttled request sent after it does).
        """
        if sent_in is not None and sent_in != self._episodes:
            self._until = max(self._until, self._clock() + at_least)
            return max(self.remaining(), at_least)
        length = min(self.maximum, max(self._next, at_least))
        self._until = max(self._until, self._clock() + length)
        self._next = min(self.maximum, length * 2)
        self._episodes += 1
        return length

    def reset(self) -> None:
        """Throttling is over: the next pause starts small again."""
        self._next = self.initial
