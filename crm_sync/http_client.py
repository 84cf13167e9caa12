"""One HTTP client per sender, opened on first use and closed at shutdown; and the
``Retry-After`` reading the senders share."""

from __future__ import annotations

import math

import aiohttp


def retry_after_seconds(value: str | None, *, at_most: float) -> float | None:
    """A ``Retry-After`` header given in seconds, clamped to ``0..at_most``; None when it is
    missing, an HTTP date or junk (the caller's own backoff applies then)."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), at_most)


class LazyHttpClient:
    """An aiohttp session created on first use (inside the running loop, not at import or
    construction) with ``timeout`` seconds in all, reopened if it was closed."""

    def __init__(self, timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        return self._http

    async def aclose(self) -> None:
        """Close the HTTP client (the app's shutdown)."""
        if self._http is not None:
            await self._http.close()
