"""Test-wide fixtures: the network guard and the stage-store backends.

Backends: SQLite always runs; PostgreSQL and Redis run when reachable
(``LEADBOT_TEST_POSTGRES_URL``, ``LEADBOT_TEST_REDIS_URL``) and are skipped with the reason
otherwise. ``LEADBOT_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns those skips into
failures, so CI cannot go green without them.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from scheduler.db import create_engine, session_factory
from tests.support.stores import scratch_store

POSTGRES_URL = os.environ.get(
    "LEADBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("LEADBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REQUIRE_SERVICES = os.environ.get("LEADBOT_TEST_REQUIRE_SERVICES") == "1"


# --- network guard -------------------------------------------------------------------------

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class NetworkAccessError(RuntimeError):
    """A test tried to reach a host other than this machine."""


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise NetworkAccessError(f"test tried to connect to {address!r}: only loopback allowed")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    if not _is_local(address):
        raise NetworkAccessError(f"test tried to connect to {address!r}: only loopback allowed")
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if name is not None and not _is_local((name,)):
        raise NetworkAccessError(f"test tried to resolve {name!r}: only loopback allowed")
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    """Install the guard before any test module imports a client."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_getaddrinfo


# --- service availability ------------------------------------------------------------------

_reachable: dict[str, str | None] = {}


def _unavailable(name: str, reason: str) -> None:
    message = f"{name} not reachable ({reason})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; LEADBOT_TEST_REQUIRE_SERVICES=1 requires it")
    pytest.skip(message)


async def _postgres_problem() -> str | None:
    if "postgres" not in _reachable:
        engine = create_engine(POSTGRES_URL, pool_size=1)
        try:
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            _reachable["postgres"] = None
        except Exception as exc:
            _reachable["postgres"] = f"{POSTGRES_URL}: {exc.__class__.__name__}: {exc}"
        finally:
            await engine.dispose()
    return _reachable["postgres"]


async def _redis_problem() -> str | None:
    if "redis" not in _reachable:
        import redis.asyncio as aioredis

        client = aioredis.from_url(REDIS_URL, socket_connect_timeout=2)
        try:
            await client.ping()
            _reachable["redis"] = None
        except Exception as exc:
            _reachable["redis"] = f"{REDIS_URL}: {exc.__class__.__name__}: {exc}"
        finally:
            await client.aclose()
    return _reachable["redis"]


# --- stage-store backends ------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty stage store on each backend (Postgres: a schema of its own)."""
    if request.param == "postgres":
        problem = await _postgres_problem()
        if problem:
            _unavailable("PostgreSQL", problem)
        url = POSTGRES_URL
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'leadbot.db'}"
    async with scratch_store(url, pool_size=25, max_overflow=5, prefix="lb") as db:
        yield db


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions on the parametrized stage store."""
    return session_factory(engine)


@pytest.fixture
async def redis_url() -> str:
    """The Redis server tests may use (database 15), skipped or failed when unreachable."""
    problem = await _redis_problem()
    if problem:
        _unavailable("Redis", problem)
    return REDIS_URL
