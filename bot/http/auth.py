"""Bearer-token authentication of the JSON API (``/api/*``)."""

from __future__ import annotations

import hmac

from aiohttp import web

from bot.http.errors import ApiError, Handler


def bearer_auth(token: str, prefix: str = "/api/") -> web.middleware:  # type: ignore[valid-type]
    """Middleware requiring ``Authorization: Bearer <token>`` on paths under ``prefix``.

    With no token configured every API call is refused: an unprotected pipeline API is
    never the silent default.
    """
    expected = token.encode()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(prefix):
            if not expected:
                raise ApiError(401, "unauthorized", "LEADBOT_API_TOKEN is not configured")
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
                raise ApiError(401, "unauthorized", "missing or wrong bearer token")
        return await handler(request)

    return middleware
