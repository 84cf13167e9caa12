"""The aiohttp application factory: the composition root of the service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import api_leads
from bot.appkeys import ENGINE, METRICS, SESSIONS, SETTINGS
from bot.auth import bearer_auth
from bot.http_errors import json_errors
from bot.metrics import Metrics
from bot.settings import Settings
from scheduler.db import create_engine, session_factory

log = logging.getLogger("leadbot.app")


async def healthz(request: web.Request) -> web.Response:
    """Liveness and readiness: answers 200 when the database answers."""
    try:
        async with request.app[ENGINE].connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: database unreachable: %s", exc)
        return web.json_response({"status": "unavailable", "database": "down"}, status=503)
    return web.json_response({"status": "ok", "database": "ok"})


def create_app(settings: Settings, *, engine: AsyncEngine | None = None) -> web.Application:
    """Build the service. An ``engine`` passed in is used and left open (the caller owns it);
    otherwise one is created from ``settings.database_url`` and disposed on shutdown."""
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            metrics.middleware,
            json_errors,
            bearer_auth(settings.api_token.get_secret_value()),
        ],
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics

    async def database(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        app[ENGINE] = engine if engine is not None else create_engine(settings.database_url)
        app[SESSIONS] = session_factory(app[ENGINE])
        yield
        if own:
            await app[ENGINE].dispose()

    app.cleanup_ctx.append(database)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics.handle)
    app.router.add_routes(api_leads.routes)
    return app
