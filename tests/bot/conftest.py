"""Fixtures for the HTTP service: the app on a real local server over each backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from tests.bot.support import make_settings


@pytest.fixture
async def client(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> TestClient[Any, Any]:
    """A client of the service running on 127.0.0.1 with the parametrized stage store.

    Periodic jobs and the email first touch do not run on their own here: tests of the API
    see exactly what they did; tests that need those flows call them or build their own app."""
    settings = make_settings(max_body_bytes=64 * 1024, first_touch=False)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
