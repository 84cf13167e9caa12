"""Fixtures of the browser tests: a live ``leadbot serve``, the fake Graph API, chromium.

- ``service`` (one per test module): ``leadbot serve`` in its own process on a free port
  with a fresh SQLite file (:class:`tests.support.live_service.LiveService`), WhatsApp
  pointed at the fake Graph API; ``team``: the console users of
  :func:`tests.console.support.add_users` (an admin, reps Ana and Bo) in its store.
- ``graph`` (per module): the fake Cloud API, running on a background event loop.
- ``browser`` (per module, see :func:`playwright`): Debian's chromium
  (``/usr/bin/chromium``, installed by ``.ci/run`` with apt) driven by Playwright through
  ``executable_path``, headless, with ``--no-sandbox`` (CI runs as root). Playwright's own
  browser download is never used. Without chromium the tests are skipped with the reason,
  or fail when ``LEADBOT_TEST_REQUIRE_SERVICES=1`` (as the PostgreSQL and Redis tests do).
- ``context`` / ``page`` (per test): a fresh browser context on the service's URL, signed
  in as nobody; ``as_user(email)``: a window signed in as that user (each user signs in
  through the form once per module). Every request to a host other than this machine is
  aborted, and chromium resolves no host name but localhost, so the browser cannot reach
  the internet either (the test process's own sockets are guarded by ``tests/conftest.py``).

``LEADBOT_SCREENSHOTS=docs`` makes the tests save the pages the README shows
(:func:`tests.console.e2e.support.screenshot`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Route,
    expect,
    sync_playwright,
)

from scheduler.store.engine import create_engine, session_factory
from tests.bot.whatsapp.conftest import APP_SECRET, VERIFY_TOKEN
from tests.conftest import REQUIRE_SERVICES
from tests.console.e2e.support import sign_in
from tests.console.support import Team, add_users
from tests.support.fakes.graph_api import FakeGraphAPI
from tests.support.live_service import BackgroundLoop, LiveService

CHROMIUM = Path("/usr/bin/chromium")
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
# Chromium resolves nothing but this machine (IP literals are left to the context's route).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
TIMEOUT_MS = 10_000  # a step that has not happened in 10 s will not happen


@pytest.fixture(scope="session")
def background() -> Iterator[BackgroundLoop]:
    """An event loop in a thread, for the async fakes and store calls."""
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def graph(background: BackgroundLoop) -> Iterator[FakeGraphAPI]:
    """The fake WhatsApp Cloud API the service sends to."""

    async def start() -> FakeGraphAPI:
        return await FakeGraphAPI().start()

    fake = background.run(start())
    yield fake
    background.run(fake.close())


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, graph: FakeGraphAPI, background: BackgroundLoop
) -> Iterator[LiveService]:
    """``leadbot serve`` with WhatsApp on the fake Graph API and the console's users."""
    live = LiveService(
        tmp_path_factory.mktemp("e2e"),
        env={
            "LEADBOT_WHATSAPP_API_URL": graph.base_url,
            "LEADBOT_WHATSAPP_PHONE_ID": graph.phone_id,
            "LEADBOT_WHATSAPP_TOKEN": graph.token,
            "LEADBOT_WHATSAPP_APP_SECRET": APP_SECRET,
            "LEADBOT_WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN,
            "LEADBOT_BURST_WINDOW_MS": "50",
        },
    ).start()
    try:
        yield live
    finally:
        live.stop()
    log = live.log()
    assert "Traceback" not in log, log[-5000:]  # no unhandled error in any request


@pytest.fixture(scope="module")
def team(service: LiveService, background: BackgroundLoop) -> Team:
    """The console's users in the service's store: an admin, and reps Ana and Bo (all with
    :data:`tests.console.support.PASSWORD`)."""
    return background.run(_add_users(service.database_url))


async def _add_users(database_url: str) -> Team:
    engine = create_engine(database_url)
    try:
        return await add_users(session_factory(engine))
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """Playwright's driver (its sync API: the tests are plain functions).

    Per module, not per session: while the sync API's driver runs, its event loop counts
    as running on the main thread, and every async test after it would fail to start its
    own loop. So it stops when the module's browser tests are done."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not installed (apt-get install chromium)"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message}; LEADBOT_TEST_REQUIRE_SERVICES=1 requires it")
        pytest.skip(message)
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's chromium, headless."""
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield launched
    launched.close()


def _local_only(route: Route) -> None:
    if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
        route.continue_()
    else:
        route.abort("blockedbyclient")


def new_context(browser: Browser, service: LiveService, **options: Any) -> BrowserContext:
    """A fresh browser profile on the service that reaches nothing but this machine."""
    fresh = browser.new_context(
        base_url=service.url,
        viewport=options.pop("viewport", {"width": 1280, "height": 800}),
        locale="en-GB",
        timezone_id="UTC",
        **options,
    )
    fresh.set_default_timeout(TIMEOUT_MS)
    fresh.route("**/*", _local_only)
    return fresh


@pytest.fixture
def context(browser: Browser, service: LiveService, team: Team) -> Iterator[BrowserContext]:
    """A fresh browser profile, signed in as nobody (cookies stay in the test)."""
    fresh = new_context(browser, service)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A tab in the test's own browser context."""
    return context.new_page()


@pytest.fixture(scope="module")
def signed_in(browser: Browser, service: LiveService, team: Team) -> Callable[[str], Any]:
    """The browser state (cookies) of a user signed in through the form, once per module
    and user: the console throttles sign-ins per address (10 a minute), and every test
    signs in from 127.0.0.1."""
    states: dict[str, Any] = {}

    def state(email: str) -> Any:
        if email not in states:
            fresh = new_context(browser, service)
            try:
                tab = fresh.new_page()
                sign_in(tab, email)
                expect(tab.get_by_role("button", name="Sign out")).to_be_visible()
                states[email] = fresh.storage_state()
            finally:
                fresh.close()
        return states[email]

    return state


@pytest.fixture
def as_user(
    browser: Browser, service: LiveService, signed_in: Callable[[str], Any]
) -> Iterator[Callable[..., Page]]:
    """``as_user(email, **context options)``: a new window signed in as that user (call it
    twice for two consoles open at once)."""
    opened: list[BrowserContext] = []

    def open_as(email: str, **options: Any) -> Page:
        fresh = new_context(browser, service, storage_state=signed_in(email), **options)
        opened.append(fresh)
        return fresh.new_page()

    yield open_as
    for each in opened:
        each.close()
