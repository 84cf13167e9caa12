"""Test-wide fixtures: the network guard and the stage-store backends.

Backends: SQLite always runs; PostgreSQL and Redis run when reachable
(``LEADBOT_TEST_POSTGRES_URL``, ``LEADBOT_TEST_REDIS_URL``) and are skipped with the reason
otherwise. ``LEADBOT_TEST_REQUIRE_SERVICES=1`` (set by ``.ci/run``) turns those skips into
failures, so CI cannot go green without them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from scheduler.store.engine import create_engine, session_factory
from tests.support.stores import SharedSchema, SQLiteTemplate, scratch_store

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
    config.addinivalue_line(
        "markers",
        "fresh_store: the test runs migrations or changes the schema, so its `engine` is "
        "migrated for it alone instead of being a copy of (SQLite) or sharing (Postgres) the "
        "session's migrated store",
    )


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> SQLiteTemplate:
    """The session's migrated SQLite file, which each test's store is a copy of."""
    return SQLiteTemplate(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def postgres_schema() -> Iterator[SharedSchema]:
    """The session's migrated Postgres schema, emptied after each test that used it."""
    shared = SharedSchema(POSTGRES_URL, prefix="lb")
    yield shared
    # Every test's event loop is closed by now: the drop gets one of its own.
    asyncio.run(shared.drop())


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty stage store on each backend.

    Alembic runs once per session and backend, not per test: an SQLite test gets its own copy
    of a migrated file; Postgres tests take turns on one migrated schema, which is emptied
    (rows deleted, id sequences restarted) after each test. Rolling back a transaction
    around the test cannot replace that: the code under test opens and commits its own.
    Tests marked ``fresh_store`` get a store migrated for them alone."""
    if request.param == "postgres":
        problem = await _postgres_problem()
        if problem:
            _unavailable("PostgreSQL", problem)
    if request.node.get_closest_marker("fresh_store") is not None:
        url = (
            POSTGRES_URL
            if request.param == "postgres"
            else f"sqlite+aiosqlite:///{tmp_path / 'leadbot.db'}"
        )
        async with scratch_store(url, pool_size=25, max_overflow=5, prefix="lb") as db:
            yield db
    elif request.param == "sqlite":
        template: SQLiteTemplate = request.getfixturevalue("sqlite_template")
        db = create_engine(await template.copy(tmp_path / "leadbot.db"))
        try:
            yield db
        finally:
            await db.dispose()
    else:
        shared: SharedSchema = request.getfixturevalue("postgres_schema")
        db = await shared.engine(pool_size=25, max_overflow=5)
        try:
            yield db
        finally:
            await db.dispose()
            await shared.empty()


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
