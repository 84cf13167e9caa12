"""Who may use the console: sessions, cookies, CSRF, throttling, roles (issue 14, item 1)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.console.auth import COOKIE, LOGIN_ATTEMPTS, LoginThrottle
from bot.http.appkeys import SETTINGS
from scheduler.pipeline import users
from scheduler.store.models import utcnow
from tests.console.support import ADMIN, PASSWORD, REP, ConsoleClient, Team, csrf_of

PAGES = ["/console/", "/console/board", "/console/takeover", "/console/approvals"]


async def test_every_page_without_a_session_goes_to_the_login(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    for path in PAGES:
        response = await console_client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/console/login?next=")


async def test_root_and_admin_lead_to_the_console(console_client: TestClient[Any, Any]) -> None:
    for path, target in [("/", "/console/"), ("/admin", "/console/scripts")]:
        response = await console_client.get(path, allow_redirects=False)
        assert (response.status, response.headers["Location"]) == (302, target)


async def test_a_write_without_a_session_is_refused(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    response = await console_client.post("/console/logout", data={"csrf_token": "x"})
    assert response.status == 401


async def test_signing_in_sets_a_hardened_cookie(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    form = await console_client.get("/console/login")
    response = await console_client.post(
        "/console/login",
        data={"csrf_token": csrf_of(await form.text()), "email": ADMIN, "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 303
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/console"
    assert not cookie["secure"]  # the test's public URL is http
    assert PASSWORD not in cookie.value


async def test_a_wrong_password_is_refused_and_the_fifth_locks(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    console = ConsoleClient(console_client)
    for _ in range(users.MAX_FAILURES):
        response = await console.login(REP, "wrong password here")
        assert response.status == 401
        assert "Wrong email or password" in await response.text()
    response = await console.login(REP)  # the right password, but locked now
    assert response.status == 401
    assert COOKIE not in {c.key for c in console_client.session.cookie_jar}


async def test_login_without_the_forms_token_is_refused(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    response = await console_client.post(
        "/console/login", data={"email": ADMIN, "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403


async def test_writes_need_the_sessions_csrf_token(admin: ConsoleClient) -> None:
    response = await admin.client.post("/console/logout", data={"csrf_token": "forged"})
    assert response.status == 403
    response = await admin.client.post("/console/logout", data={})
    assert response.status == 403
    still = await admin.get("/console/", allow_redirects=False)
    assert still.status == 200  # the refused logout did nothing


async def test_the_console_never_accepts_the_api_token(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    token = console_client.app[SETTINGS].api_token.get_secret_value()
    response = await console_client.get(
        "/console/", headers={"Authorization": f"Bearer {token}"}, allow_redirects=False
    )
    assert response.status == 303


async def test_the_api_never_accepts_the_console_cookie(admin: ConsoleClient) -> None:
    response = await admin.client.get("/api/leads")
    assert response.status == 401


async def test_logout_ends_the_session_on_the_server(admin: ConsoleClient) -> None:
    cookie = next(c for c in admin.client.session.cookie_jar if c.key == COOKIE)
    response = await admin.post("/console/logout", allow_redirects=False)
    assert response.status == 303
    # The old cookie, replayed, opens nothing.
    replay = await admin.client.get(
        "/console/", headers={"Cookie": f"{COOKIE}={cookie.value}"}, allow_redirects=False
    )
    assert replay.status == 303


async def test_a_tampered_cookie_opens_nothing(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    response = await console_client.get(
        "/console/", headers={"Cookie": f"{COOKIE}=eyJ0IjoieCJ9.AAAA"}, allow_redirects=False
    )
    assert response.status == 303


async def test_a_password_change_ends_every_session(
    console_client: TestClient[Any, Any],
    rep: ConsoleClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await users.change_password(session, REP, "a brand new passphrase", now=utcnow())
    response = await rep.get("/console/", allow_redirects=False)
    assert response.status == 303


async def test_changing_ones_own_password_signs_out_everywhere(
    rep: ConsoleClient, aiohttp_client: Any
) -> None:
    second = ConsoleClient(await aiohttp_client(rep.client.server))
    assert (await second.login(REP)).status == 200
    response = await rep.post(
        "/console/account/password",
        {"current_password": PASSWORD, "new_password": "another long passphrase"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert (await second.get("/console/", allow_redirects=False)).status == 303
    assert (await rep.get("/console/", allow_redirects=False)).status == 303
    assert (await second.login(REP, "another long passphrase")).status == 200


async def test_an_idle_session_ends(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    settings = admin.client.app[SETTINGS]
    from datetime import timedelta

    from sqlalchemy import update

    from scheduler.store.models import ConsoleSession

    async with sessions.begin() as session:
        await session.execute(
            update(ConsoleSession).values(
                last_seen_at=utcnow() - timedelta(minutes=settings.console_idle_minutes + 1)
            )
        )
    response = await admin.get("/console/", allow_redirects=False)
    assert response.status == 303


def test_the_login_throttle_counts_per_address_in_a_sliding_window() -> None:
    throttle = LoginThrottle(attempts=LOGIN_ATTEMPTS, window=60)
    assert all(throttle.allow("1.2.3.4", now=float(i)) for i in range(LOGIN_ATTEMPTS))
    assert not throttle.allow("1.2.3.4", now=30.0)
    assert throttle.allow("5.6.7.8", now=30.0)  # another address is not slowed
    assert throttle.allow("1.2.3.4", now=61.0)  # the first attempt left the window


async def test_logins_past_the_throttle_get_429(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    console = ConsoleClient(console_client)
    statuses = [(await console.login(ADMIN, "nope nope nope")).status for _ in range(12)]
    assert statuses[-1] == 429 and 429 not in statuses[:LOGIN_ATTEMPTS]


async def test_console_pages_carry_a_strict_policy(admin: ConsoleClient) -> None:
    response = await admin.get("/console/")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["Cache-Control"] == "no-store"


async def test_docs_lists_every_api_operation_for_a_signed_in_user(admin: ConsoleClient) -> None:
    import json

    from bot.http.openapi import spec_bytes

    page = await (await admin.get("/docs")).text()
    for path, item in json.loads(spec_bytes())["paths"].items():
        for method in ("get", "post", "delete"):
            if method in item:
                assert f"<code>{path}</code>" in page
                assert item[method]["summary"].replace("'", "&#39;") in page


def _console_routes(client: TestClient[Any, Any]) -> list[tuple[str, str]]:
    """Every (method, path) the app registers under /console, with ids filled in."""
    found = []
    for route in client.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if not path.startswith("/console/") or path.startswith("/console/static"):
            continue
        if route.method == "HEAD" or path == "/console/login":
            continue
        filled = path
        for name in ("lead_id", "touch_id", "id", "script_id", "slug", "name", "version"):
            filled = filled.replace("{" + name + "}", "1")
        found.append((route.method, filled.split("{")[0] if "{" in filled else filled))
    return found


async def test_no_console_route_answers_without_a_session(
    console_client: TestClient[Any, Any], team: Team
) -> None:
    routes = _console_routes(console_client)
    assert ("GET", "/console/") in routes and ("POST", "/console/logout") in routes
    for method, path in routes:
        response = await console_client.request(
            method, path, data={"csrf_token": "x"}, allow_redirects=False
        )
        expected = 303 if method == "GET" else 401
        assert response.status == expected, (method, path, response.status)


async def test_no_console_write_is_taken_without_the_csrf_token(admin: ConsoleClient) -> None:
    writes = [(m, p) for m, p in _console_routes(admin.client) if m not in ("GET", "HEAD")]
    assert writes
    for method, path in writes:
        response = await admin.client.request(method, path, data={}, allow_redirects=False)
        assert response.status == 403, (method, path, response.status)
    assert (await admin.get("/console/", allow_redirects=False)).status == 200
