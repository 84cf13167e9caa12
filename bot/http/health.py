"""``GET /healthz``: liveness and readiness, checking every configured dependency.

The database is always checked; components register the other dependencies they were
configured with (Redis, by the WhatsApp inbox's lock backend) with :func:`add_check`. Each
check runs concurrently under :data:`CHECK_TIMEOUT`; any failure answers 503 with a JSON
body naming what is down, e.g. ``{"status": "unavailable", "database": "ok", "redis":
"down"}``, so a load balancer stops sending traffic and an operator sees which one it is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.http.appkeys import ENGINE
from scheduler.store.engine import ping

log = logging.getLogger("leadbot.app")

HealthCheck = Callable[[], Awaitable[object]]
HEALTH_CHECKS = web.AppKey("health_checks", dict[str, HealthCheck])
CHECK_TIMEOUT = 2.0  # seconds; a dependency that answers slower than this counts as down


def setup(app: web.Application) -> None:
    """Route ``/healthz`` and make room for the components' checks."""
    app[HEALTH_CHECKS] = {}
    app.router.add_get("/healthz", healthz)


def add_check(app: web.Application, name: str, check: HealthCheck) -> None:
    """Check ``name`` on every ``/healthz``: ``check()`` raising (or timing out) means down."""
    app[HEALTH_CHECKS][name] = check


async def healthz(request: web.Request) -> web.Response:
    """200 when every dependency answers; 503 naming the ones that do not."""
    engine = request.app[ENGINE]

    async def database() -> None:
        await ping(engine)

    registered: dict[str, HealthCheck] = request.app[HEALTH_CHECKS]
    checks: dict[str, HealthCheck] = {"database": database, **registered}
    results = await asyncio.gather(*(_run(name, check) for name, check in checks.items()))
    body: dict[str, str] = dict(zip(checks, results, strict=True))
    healthy = all(result == "ok" for result in results)
    body = {"status": "ok" if healthy else "unavailable", **body}
    return web.json_response(body, status=200 if healthy else 503)


async def _run(name: str, check: HealthCheck) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except Exception as exc:
        log.warning("health check: %s unreachable: %s: %s", name, type(exc).__name__, exc)
        return "down"
    return "ok"
