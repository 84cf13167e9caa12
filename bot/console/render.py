"""What every console template sees, and the filters they format with."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from scheduler.pipeline.users import ConsoleLogin, Role
from scheduler.stage_names import Stage
from scheduler.store.models import utcnow

STAGE_LABELS: dict[str, str] = {
    Stage.NEW: "New",
    Stage.CONTACTED: "Contacted",
    Stage.QUALIFIED: "Qualified",
    Stage.PROPOSAL_SENT: "Proposal sent",
    Stage.WON: "Won",
    Stage.LOST: "Lost",
    Stage.DORMANT: "Dormant",
}
"""The seven stages as the console names them, in pipeline order."""

LOGIN = web.RequestKey("console_login", ConsoleLogin)
"""The request key of the signed-in user (set by :func:`bot.console.auth.console_auth`)."""


def current(request: web.Request) -> ConsoleLogin:
    """The signed-in user of a console request."""
    return request[LOGIN]


def is_admin(login: ConsoleLogin) -> bool:
    """Whether ``login`` may use the admin pages."""
    return login.user.role == Role.ADMIN.value


def context(request: web.Request) -> dict[str, Any]:
    """The signed-in user, their CSRF token (forms and htmx echo it) and the time."""
    login = request.get(LOGIN)
    return {
        "login": login,
        "user": None if login is None else login.user,
        "is_admin": login is not None and is_admin(login),
        "csrf_token": "" if login is None else login.csrf_token,
        "now": utcnow(),
        "path": request.path,
    }


def render(
    request: web.Request, template: str, values: dict[str, Any], *, status: int = 200
) -> web.Response:
    """Render a console template; pages are never cached (they show live data)."""
    response = aiohttp_jinja2.render_template(
        template, request, {**context(request), **values}, status=status
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def ago(value: datetime | None, now: datetime | None = None) -> str:
    """A short "how long ago" ("just now", "5 min", "3 h", "2 d")."""
    if value is None:
        return "—"
    return duration((now or utcnow()) - value)


def duration(delta: timedelta) -> str:
    """A short duration ("40 s", "5 min", "3 h 10 min", "2 d")."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds // 86400} d"


def when(value: datetime | None) -> str:
    """A timestamp as ``2026-12-06 10:42 UTC``."""
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def filters() -> dict[str, Callable[..., str]]:
    """The Jinja filters of the console's templates."""
    return {"ago": ago, "duration": duration, "when": when}


STATIC_DIR = Path(__file__).parent / "static"


@cache
def static(name: str) -> str:
    """The URL of a vendored static file, with its content hash (browsers cache it safely)."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]
    return f"/console/static/{name}?v={digest}"
