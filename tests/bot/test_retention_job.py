"""The retention job as the service runs it: configured by LEADBOT_RETENTION_DAYS, refused
below the vendors' retry windows, registered with the periodic jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.appkeys import JOBS, SESSIONS
from bot.settings import SettingsError, load_settings
from scheduler.store.models import InboxItem
from tests.bot.support import make_settings

NOW = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)


def test_retention_below_the_longest_retry_window_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADBOT_RETENTION_DAYS", "7")
    with pytest.raises(SettingsError, match="LEADBOT_RETENTION_DAYS: 7 days is too short"):
        load_settings(_env_file=None)
    monkeypatch.setenv("LEADBOT_RETENTION_DAYS", "8")
    assert load_settings(_env_file=None).retention_days == 8
    monkeypatch.delenv("LEADBOT_RETENTION_DAYS")
    assert load_settings(_env_file=None).retention_days == 90


async def test_the_service_runs_the_retention_job_with_the_configured_days(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]]
) -> None:
    settings = make_settings(retention_days=30, first_touch=False)
    client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    jobs = {job.name: job for job in client.app[JOBS]}
    assert "retention" in jobs
    async with client.app[SESSIONS].begin() as session:
        for wamid, age in (("wamid.31d", 31), ("wamid.29d", 29)):
            at = NOW - timedelta(days=age)
            await session.execute(
                insert(InboxItem).values(
                    channel="whatsapp",
                    external_id=wamid,
                    sender="+14155550100",
                    payload={},
                    received_at=at,
                    processed_at=at,
                    attempts=1,
                )
            )

    await jobs["retention"].func(NOW)

    async with client.app[SESSIONS]() as session:
        assert set(await session.scalars(select(InboxItem.external_id))) == {"wamid.29d"}
