"""The console: the pages reps and admins work the pipeline in (``/console/…``).

Server-rendered with aiohttp-jinja2 (templates in ``templates/``), made lively with the
vendored htmx (``static/htmx.min.js``, no CDN) and a few lines of plain JS for the live
streams. Every page needs a console session (:mod:`bot.console.auth`); handlers read and
write through the store and pipeline functions, never with SQL of their own.

One module a page: :mod:`~bot.console.today` (the home page), :mod:`~bot.console.board`,
:mod:`~bot.console.lead_page`, :mod:`~bot.console.takeover`,
:mod:`~bot.console.approvals`, :mod:`~bot.console.scripts_admin`,
:mod:`~bot.console.event_deliveries` (outbound events that were never delivered), and
:mod:`~bot.console.api_docs` (``/docs``: the JSON API's reference).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from bot.console import (
    api_docs,
    approvals,
    auth,
    board,
    event_deliveries,
    lead_page,
    scripts_admin,
    takeover,
    takeover_events,
    today,
)
from bot.console.render import STATIC_DIR, filters, static
from bot.http.appkeys import JOBS, SESSIONS, SETTINGS
from scheduler.loop import PeriodicJob
from scheduler.pipeline import users

TEMPLATES = Path(__file__).parent / "templates"
PAGES = (
    auth,
    today,
    board,
    lead_page,
    takeover,
    approvals,
    scripts_admin,
    event_deliveries,
    api_docs,
)
# Ended sessions are deleted this often (seconds): they can never be used again.
SESSION_PURGE_SECONDS = 3600.0


def setup(app: web.Application) -> None:
    """Register the console's templates, static files, routes and session clean-up job."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(filters())
    env.globals["static"] = static
    app[auth.THROTTLE] = auth.LoginThrottle()
    takeover_events.setup(app)  # open live streams end at shutdown, not after aiohttp's 60 s
    for page in PAGES:
        app.router.add_routes(page.routes)
    app.router.add_static(auth.STATIC_PREFIX.rstrip("/"), STATIC_DIR)
    app.router.add_get("/", _to_console)
    app.router.add_get("/console", _to_console)
    app.router.add_get("/admin", _to_scripts)

    async def purge_sessions(now: datetime) -> None:
        settings = app[SETTINGS]
        async with app[SESSIONS].begin() as session:
            await users.purge_sessions(
                session, now=now, idle=timedelta(minutes=settings.console_idle_minutes)
            )

    app[JOBS].append(PeriodicJob("console_sessions", SESSION_PURGE_SECONDS, purge_sessions))


async def _to_console(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(auth.PREFIX + "/")


async def _to_scripts(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(auth.PREFIX + "/scripts")
