"""HubSpot's rate limits, kept on our side so the account's budget is never overrun.

HubSpot counts requests per app in a rolling 10-second window (100 on Free/Starter, 190 on
Professional/Enterprise) and per account per day, and says where we stand in every answer
(``X-HubSpot-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``, ``-Daily``,
``-Daily-Remaining``; search answers carry none). :class:`RateLimiter` counts our own
requests in the window, learns the limit and interval from those headers, and takes the
server's ``Remaining`` as the truth when it is lower (another process of ours, or another
integration, spends the same budget).

A request that would exceed the window waits for a slot when that is a short wait (up to
``max_wait``, about one window); otherwise, and whenever the daily budget is spent or a
``429`` said to stop, it is *held back*: :class:`HeldBack` carries how long, and the channel
turns it into a deferral of the outbox row that costs no try.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from dialogs.errors import LeadbotError

TEN_SECONDS = 10.0
_IN_FLIGHT_POLL = 0.05  # seconds between looks at a window filled by requests in flight


class HeldBack(LeadbotError):
    """No request may go out now; ``retry_after`` seconds from now it may."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class RateLimiter:
    """Our side of HubSpot's windows. ``clock`` is monotonic seconds, ``wall`` the UTC time
    (the daily window ends at midnight)."""

    def __init__(
        self,
        per_interval: int = 100,
        interval: float = TEN_SECONDS,
        *,
        max_wait: float = TEN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.per_interval = per_interval
        self.interval = interval
        self.max_wait = max_wait
        self.clock = clock
        self.wall = wall
        self._sent: deque[float] = deque()  # when each request in the window ended
        self._in_flight = 0
        self._blocked_until = 0.0
        self._blocked_why = ""

    async def acquire(self) -> None:
        """Take a slot for one request: at once, after a short wait, or :class:`HeldBack`.
        Every acquire is followed by :meth:`done` when the answer (or the failure) is in."""
        while True:
            now = self.clock()
            if now < self._blocked_until:
                raise HeldBack(self._blocked_why, self._blocked_until - now)
            while self._sent and self._sent[0] <= now - self.interval:
                self._sent.popleft()
            if len(self._sent) + self._in_flight < self.per_interval:
                self._in_flight += 1
                return
            # Only requests in flight fill the window: their slots are timed when they end.
            wait = self._sent[0] + self.interval - now if self._sent else _IN_FLIGHT_POLL
            if wait > self.max_wait:
                raise HeldBack("HubSpot's 10-second window is full", wait)
            await asyncio.sleep(wait)

    def done(self) -> None:
        """A request taken by :meth:`acquire` has ended. Its slot is timed *now*, not when it
        left: HubSpot counted it somewhere in between, so our window never frees a slot
        before HubSpot's does (timing it at the start let a busy process overrun by one)."""
        self._in_flight = max(0, self._in_flight - 1)
        self._sent.append(self.clock())

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from an answer's ``X-HubSpot-RateLimit-*`` headers."""
        limit = _int(headers.get("X-HubSpot-RateLimit-Max"))
        interval = _int(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"))
        remaining = _int(headers.get("X-HubSpot-RateLimit-Remaining"))
        daily_left = _int(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        if limit and limit > 0:
            self.per_interval = limit
        if interval and interval > 0:
            self.interval = interval / 1000
        if remaining is not None:
            now = self.clock()
            ours_left = self.per_interval - len(self._sent) - self._in_flight
            # Someone else spends the same budget: count their requests as ours, now.
            self._sent.extend([now] * max(0, ours_left - remaining))
        if daily_left is not None and daily_left <= 0:
            self.block_until_midnight("HubSpot's daily limit is spent")

    def throttled(self, policy: str, retry_after: float | None) -> float:
        """A ``429`` with ``policyName``: stop sending for as long as it says (``Retry-After``
        when given, else by policy: a day's rest for DAILY, a second for SECONDLY (search),
        a window otherwise); the seconds to wait."""
        if policy == "DAILY":
            return self.block_until_midnight("HubSpot's daily limit is spent (429 DAILY)")
        if retry_after is None:
            retry_after = 1.0 if policy == "SECONDLY" else self.interval
        self._block(retry_after, f"HubSpot answered 429 ({policy or 'no policy'})")
        return retry_after

    def block_until_midnight(self, why: str) -> float:
        """Stop sending until the next UTC midnight; the seconds. HubSpot's day ends at
        the account's midnight, which we do not know: if that is later, the first request
        after ours gets a ``429 DAILY`` and blocks again; nothing is lost either way."""
        now = self.wall()
        midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        seconds = max(1.0, (midnight - now).total_seconds())
        self._block(seconds, why)
        return seconds

    def _block(self, seconds: float, why: str) -> None:
        until = self.clock() + seconds
        if until > self._blocked_until:
            self._blocked_until, self._blocked_why = until, why


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
