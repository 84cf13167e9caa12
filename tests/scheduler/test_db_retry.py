"""``scheduler.store.engine.run_retrying``: a transaction aborted only by others is run again,
a bug is not, and the tries are bounded."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.store.engine import is_retryable, run_retrying
from scheduler.store.models import Suppression, utcnow

Sessions = async_sessionmaker[AsyncSession]


class DeadlockDetectedError(Exception):
    """Named like asyncpg's, which is how a wrapped one is recognized."""

    sqlstate = "40P01"


def wrapped(error: Exception) -> DBAPIError:
    return DBAPIError("UPDATE leads …", {}, error)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (wrapped(DeadlockDetectedError("deadlock detected")), True),
        (OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")), True),
        (wrapped(ValueError("invalid input syntax")), False),
        (RuntimeError("deadlock detected"), False),
    ],
)
def test_what_is_retried(error: Exception, retryable: bool) -> None:
    assert is_retryable(error) is retryable


async def test_an_aborted_transaction_is_rolled_back_and_run_again(sessions: Sessions) -> None:
    tries = 0

    async def work(session: AsyncSession) -> int:
        nonlocal tries
        tries += 1
        session.add(
            Suppression(address=f"x{tries}@example.com", reason="test", created_at=utcnow())
        )
        await session.flush()
        if tries < 3:
            raise wrapped(DeadlockDetectedError("deadlock detected"))
        return tries

    assert await run_retrying(sessions, work, attempts=5) == 3
    async with sessions() as session:  # the aborted tries left nothing behind
        assert list(await session.scalars(select(Suppression.address))) == ["x3@example.com"]


async def test_tries_are_bounded_and_other_errors_are_not_retried(sessions: Sessions) -> None:
    tries = 0

    async def deadlocks(session: AsyncSession) -> None:
        nonlocal tries
        tries += 1
        raise wrapped(DeadlockDetectedError("deadlock detected"))

    with pytest.raises(DBAPIError):
        await run_retrying(sessions, deadlocks, attempts=3)
    assert tries == 3

    async def buggy(session: AsyncSession) -> None:
        nonlocal tries
        tries += 1
        raise wrapped(ValueError("bad"))

    tries = 0
    with pytest.raises(DBAPIError):
        await run_retrying(sessions, buggy, attempts=3)
    assert tries == 1
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Suppression)) == 0
