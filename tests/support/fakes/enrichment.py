"""A fake enrichment API on 127.0.0.1: answers ``GET /v1/enrich?email=&domain=&name=``.

Known people get 200 with a People-Data-Labs-like nested body; unknown ones 404 (nothing
found). ``status`` forces an error reply; every request is recorded.
"""

from __future__ import annotations

from typing import Any, Self

from aiohttp import web


class FakeEnrichment:
    """The server. ``people`` maps an email to the JSON body returned for it."""

    def __init__(self, token: str = "enrich-token") -> None:
        self.token = token
        self.people: dict[str, dict[str, Any]] = {}
        self.status: int | None = None
        self.requests: list[dict[str, str]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _enrich(self, request: web.Request) -> web.Response:
        self.requests.append(
            {**request.query, "authorization": request.headers.get("Authorization", "")}
        )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.status is not None:
            return web.json_response({"error": "boom"}, status=self.status)
        found = self.people.get(request.query.get("email", ""))
        if found is None:
            return web.json_response({"status": 404, "error": "no match"}, status=404)
        return web.json_response(found)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/enrich", self._enrich)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/v1/enrich"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
