"""Who is signed in to the console, and what they may do.

- A login opens a server-side session (:mod:`scheduler.pipeline.users`); the browser holds
  its random token in a cookie signed with ``LEADBOT_SECRET_KEY`` (HttpOnly, SameSite=Lax,
  Secure when ``LEADBOT_PUBLIC_URL`` is https, path ``/console``). A session idle for
  ``LEADBOT_CONSOLE_IDLE_MINUTES`` ends; a password change or deactivation ends them all.
- Every console path but the login page and the static files needs that session. The
  console never reads an ``Authorization`` header (the API's bearer token opens no page),
  and the API's middleware never reads the cookie.
- Every state-changing request (any method but GET/HEAD/OPTIONS) echoes the session's CSRF
  token, as the ``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx sends the
  header, from the page's ``<meta name="csrf-token">``). The login form itself uses a
  double-submit token (a cookie and a field that must match), as there is no session yet.
- Logins are throttled per client address (:class:`LoginThrottle`) on top of the per-user
  lock after repeated wrong passwords.
- Admin pages are wrapped in :func:`admin_only`; a rep gets 403 there.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from bot.console.render import LOGIN, current, is_admin, render
from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.errors import Handler
from bot.http.signing import BadSignature, Signer
from bot.settings import Settings
from scheduler.errors import StoreError
from scheduler.pipeline import users
from scheduler.pipeline.users import ConsoleLogin
from scheduler.store.models import utcnow

PREFIX = "/console"
COOKIE = "leadbot_console"
LOGIN_CSRF_COOKIE = "leadbot_login_csrf"
LOGIN_PATH = f"{PREFIX}/login"
STATIC_PREFIX = f"{PREFIX}/static/"
PURPOSE = "console_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Per client address: at most this many login attempts per window (a password-guessing
# script is slowed to a crawl; a person who mistypes twice is not).
LOGIN_ATTEMPTS = 10
LOGIN_WINDOW_SECONDS = 60.0

routes = web.RouteTableDef()


def admin_only(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Wrap a console handler so that only admins reach it (403 for reps)."""

    @wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        if not is_admin(current(request)):
            raise web.HTTPForbidden(reason="admins only")
        return await handler(request)

    return wrapper


class LoginThrottle:
    """A sliding window of login attempts per client address (in this process)."""

    def __init__(self, attempts: int = LOGIN_ATTEMPTS, window: float = LOGIN_WINDOW_SECONDS):
        self.attempts, self.window = attempts, window
        self._seen: dict[str, deque[float]] = {}

    def allow(self, client: str, now: float | None = None) -> bool:
        """Count an attempt from ``client``; False when it is over the limit."""
        now = time.monotonic() if now is None else now
        if len(self._seen) > 10_000:  # forget idle addresses so the map stays small
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
        seen = self._seen.setdefault(client, deque())
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(seen) >= self.attempts:
            return False
        seen.append(now)
        return True


THROTTLE = web.AppKey("console_login_throttle", LoginThrottle)


def _signer(settings: Settings) -> Signer:
    return Signer(settings.secret_key)


def _secure(settings: Settings) -> bool:
    return settings.public_url.lower().startswith("https://")


def _idle(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.console_idle_minutes)


def _token(request: web.Request) -> str | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        token = _signer(request.app[SETTINGS]).verify(PURPOSE, raw).get("t")
    except BadSignature:
        return None
    return token if isinstance(token, str) else None


async def _resolve(request: web.Request) -> ConsoleLogin | None:
    token = _token(request)
    if token is None:
        return None
    async with request.app[SESSIONS].begin() as session:
        return await users.resolve_session(
            session, token, now=utcnow(), idle=_idle(request.app[SETTINGS])
        )


async def _given_csrf(request: web.Request) -> str:
    header = request.headers.get("X-CSRF-Token")
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        value = (await request.post()).get("csrf_token")
        return value if isinstance(value, str) else ""
    return ""


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _is_public(path: str) -> bool:
    return path == LOGIN_PATH or path.startswith(STATIC_PREFIX)


@web.middleware
async def console_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require a console session (and its CSRF token on writes) under ``/console``; answer
    the console's errors as HTML pages (htmx requests: the message alone)."""
    path = request.path
    if not (path == PREFIX or path.startswith(PREFIX + "/")):
        return await handler(request)
    try:
        if _is_public(path):
            return await handler(request)
        return await _signed_in(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_page(request, exc.status, exc.reason)
    except StoreError as exc:
        return error_page(request, exc.status, exc.message)


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """An error as the console shows it: a page, or for htmx the bare message."""
    if "HX-Request" in request.headers:
        return web.Response(text=message, status=status, content_type="text/plain")
    return render(request, "error.html", {"status": status, "message": message}, status=status)


async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    login = await _resolve(request)
    if login is None:
        if request.method in SAFE_METHODS and "HX-Request" not in request.headers:
            raise web.HTTPSeeOther(f"{LOGIN_PATH}?{_next_query(request)}")
        raise web.HTTPUnauthorized(reason="sign in to the console first")
    if request.method not in SAFE_METHODS and not _same(
        await _given_csrf(request), login.csrf_token
    ):
        raise web.HTTPForbidden(
            reason="the form's CSRF token is missing or wrong: reload the page"
        )
    request[LOGIN] = login
    return await handler(request)


def _next_query(request: web.Request) -> str:
    return urlencode({"next": request.path_qs})


def _safe_next(value: Any) -> str:
    """Where to go after login: only a console path (never another site)."""
    if isinstance(value, str) and value.startswith(PREFIX + "/") and "//" not in value:
        return value
    return PREFIX + "/"


def set_session_cookie(response: web.StreamResponse, settings: Settings, token: str) -> None:
    """Put the signed session cookie on ``response``."""
    response.set_cookie(
        COOKIE,
        _signer(settings).sign(PURPOSE, {"t": token}),
        path=PREFIX,
        httponly=True,
        samesite="Lax",
        secure=_secure(settings),
    )


def _login_page(
    request: web.Request, *, error: str = "", status: int = 200, email: str = ""
) -> web.Response:
    csrf = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {
            "csrf_token": csrf,
            "error": error,
            "email": email,
            "next": _safe_next(request.query.get("next")),
        },
        status=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        path=LOGIN_PATH,
        httponly=True,
        samesite="Strict",
        secure=_secure(request.app[SETTINGS]),
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get(LOGIN_PATH)
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form (a signed-in user goes straight on)."""
    if await _resolve(request) is not None:
        raise web.HTTPSeeOther(_safe_next(request.query.get("next")))
    return _login_page(request)


@routes.post(LOGIN_PATH)
async def login(request: web.Request) -> web.StreamResponse:
    """Check the email and password; on success open a session and go where asked."""
    form = await request.post()
    given = form.get("csrf_token")
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not isinstance(given, str) or not _same(given, expected):
        return _login_page(request, error="The form expired: please sign in again.", status=403)
    if not request.app[THROTTLE].allow(request.remote or "?"):
        return _login_page(
            request, error="Too many sign-in attempts: wait a minute and try again.", status=429
        )
    email, password = form.get("email"), form.get("password")
    if not isinstance(email, str) or not isinstance(password, str):
        return _login_page(request, error="Give your email and password.", status=400)
    now = utcnow()
    async with request.app[SESSIONS].begin() as session:
        user = await users.authenticate(session, email, password, now=now)
        token = None if user is None else (await users.start_session(session, user, now=now))[0]
    if token is None:
        return _login_page(
            request,
            error="Wrong email or password, or the account is locked for a while.",
            status=401,
            email=email[:320],
        )
    response = web.HTTPSeeOther(_safe_next(form.get("next")))
    set_session_cookie(response, request.app[SETTINGS], token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
    raise response


@routes.post(f"{PREFIX}/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End this session (the cookie is cleared too)."""
    token = _token(request)
    if token is not None:
        async with request.app[SESSIONS].begin() as session:
            await users.end_session(session, token)
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(COOKIE, path=PREFIX)
    raise response


@routes.post(f"{PREFIX}/account/password")
async def change_own_password(request: web.Request) -> web.StreamResponse:
    """Change the signed-in user's password (the current one is asked again); every
    session of theirs ends, this one included, so they sign in again."""
    login_ = current(request)
    form = await request.post()
    old, new = form.get("current_password"), form.get("new_password")
    if not isinstance(old, str) or not isinstance(new, str):
        raise web.HTTPBadRequest(reason="give the current and the new password")
    now = utcnow()
    async with request.app[SESSIONS].begin() as session:
        user = await users.authenticate(session, login_.user.email, old, now=now)
    if user is None:
        raise web.HTTPForbidden(reason="the current password is wrong")
    try:
        async with request.app[SESSIONS].begin() as session:
            await users.change_password(session, login_.user.email, new, now=now)
    except StoreError as exc:
        raise web.HTTPBadRequest(reason=exc.message) from None
    response = web.HTTPSeeOther(LOGIN_PATH)
    response.del_cookie(COOKIE, path=PREFIX)
    raise response
