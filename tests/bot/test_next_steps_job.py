"""The service runs the next-step check as a periodic job and exports what it found as the
gauge ``leadbot_leads_without_next_step{stage,outcome}`` on ``/metrics`` (issue 12, item 6)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.appkeys import JOBS, SESSIONS
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, Touch, utcnow
from tests.bot.support import make_settings

Client = TestClient[Any, Any]
SERIES = 'leadbot_leads_without_next_step{outcome="scheduled",stage="contacted"}'


async def test_the_check_repairs_a_stalled_lead_and_the_gauge_shows_it(
    engine: AsyncEngine, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(create_app(make_settings(), engine=engine, run_scheduler=False))
    [job] = [j for j in client.app[JOBS] if j.name == "leads.next_steps"]
    now = utcnow()
    async with client.app[SESSIONS].begin() as session:
        lead = (
            await intake(
                session,
                LeadIn(phone="+14155550123", name="Dana"),
                default_region="US",
                now=now - timedelta(hours=2),
            )
        ).lead
        stalled = await session.get(Lead, lead.id)
        assert stalled is not None
        stalled.stage, stalled.last_inbound_at = "contacted", now - timedelta(hours=2)
        stalled.last_outbound_at = now - timedelta(hours=2)  # the bot answered

    await job.func(now)

    metrics = await (await client.get("/metrics")).text()
    assert f"{SERIES} 1.0" in metrics
    assert 'leadbot_leads_without_next_step{outcome="unrepaired",stage="new"} 0.0' in metrics
    async with client.app[SESSIONS]() as session:
        touch = await session.scalar(Touch.__table__.select().where(Touch.lead_id == lead.id))
    assert touch is not None  # the quiet cadence was scheduled
    await job.func(now + timedelta(seconds=1))
    assert f"{SERIES} 0.0" in await (await client.get("/metrics")).text()
