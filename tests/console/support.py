"""Signing in to the console from tests: users, and a client that keeps the session.

:func:`add_users` creates an admin and a rep user (the rep linked to a rep who owns leads);
:class:`ConsoleClient` wraps aiohttp's test client: it signs in through the real login form
(double-submit token, cookie), reads the page's CSRF token, and adds it to every write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from scheduler.pipeline import users
from scheduler.store import Sessions
from scheduler.store.models import utcnow
from scheduler.store.reps import add_rep

PASSWORD = "correct horse battery staple"
ADMIN = "admin@team.example"
REP = "ana@team.example"
OTHER_REP = "bo@team.example"
_CSRF = re.compile(r'name="csrf[-_]token"\s+(?:content|value)="([^"]*)"')


@dataclass(frozen=True)
class Team:
    """The ids of the reps :func:`add_users` made (``ana`` and ``bo``)."""

    ana_rep_id: int
    bo_rep_id: int


async def add_users(sessions: Sessions) -> Team:
    """An admin, and two rep users (Ana, Bo) each linked to their own rep; all with
    :data:`PASSWORD`."""
    now = utcnow()
    async with sessions.begin() as session:
        ana = await add_rep(session, name="Ana", email=REP, whatsapp=None, now=now)
        bo = await add_rep(session, name="Bo", email=OTHER_REP, whatsapp=None, now=now)
        await users.create_user(session, email=ADMIN, password=PASSWORD, role="admin", now=now)
        await users.create_user(
            session, email=REP, password=PASSWORD, role="rep", rep_email=REP, now=now
        )
        await users.create_user(
            session, email=OTHER_REP, password=PASSWORD, role="rep", rep_email=OTHER_REP, now=now
        )
    return Team(ana_rep_id=ana.id, bo_rep_id=bo.id)


def csrf_of(page: str) -> str:
    """The CSRF token a console page carries (its meta tag or a form field)."""
    found = _CSRF.search(page)
    assert found, "no CSRF token on the page"
    return found.group(1)


class ConsoleClient:
    """A signed-in console user over a test client (one cookie jar per instance)."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.csrf = ""

    async def login(self, email: str, password: str = PASSWORD) -> ClientResponse:
        """Sign in through the form; the response after redirects (the Today page)."""
        form = await self.client.get("/console/login")
        token = csrf_of(await form.text())
        response = await self.client.post(
            "/console/login",
            data={"csrf_token": token, "email": email, "password": password, "next": ""},
        )
        page = await response.text()
        if response.status == 200 and "csrf-token" in page:
            self.csrf = csrf_of(page)
        return response

    async def get(self, path: str, **kwargs: Any) -> ClientResponse:
        """GET a console path (redirects followed)."""
        return await self.client.get(path, **kwargs)

    async def post(
        self, path: str, data: dict[str, Any] | None = None, **kwargs: Any
    ) -> ClientResponse:
        """POST a form with the session's CSRF token."""
        return await self.client.post(
            path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs
        )
