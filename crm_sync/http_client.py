"""One HTTP client per sender, opened on first use and closed at shutdown."""

from __future__ import annotations

import aiohttp


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
