"""Fixtures for the console: the service on a real local server, users, signed-in clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from tests.bot.support import make_settings
from tests.console.support import ADMIN, REP, ConsoleClient, Team, add_users

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def console_client(engine: AsyncEngine, aiohttp_client: MakeClient) -> TestClient[Any, Any]:
    """A client of the service (no periodic jobs, no email first touch) on the
    parametrized store."""
    settings = make_settings(first_touch=False)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


@pytest.fixture
async def team(sessions: async_sessionmaker[AsyncSession]) -> Team:
    """The admin and the two rep users of :func:`tests.console.support.add_users`."""
    return await add_users(sessions)


@pytest.fixture
async def admin(console_client: TestClient[Any, Any], team: Team) -> ConsoleClient:
    """The admin, signed in."""
    console = ConsoleClient(console_client)
    response = await console.login(ADMIN)
    assert response.status == 200, await response.text()
    return console


@pytest.fixture
async def rep(
    console_client: TestClient[Any, Any], team: Team, aiohttp_client: MakeClient
) -> ConsoleClient:
    """Ana (a rep), signed in, with her own cookie jar (a second client of the same app)."""
    console = ConsoleClient(await aiohttp_client(console_client.server))
    response = await console.login(REP)
    assert response.status == 200, await response.text()
    return console
