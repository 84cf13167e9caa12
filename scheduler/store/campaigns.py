"""Campaigns as the leads' attribution records them: read-only, for the console.

A WhatsApp lead that came through a click-to-chat link carries its campaign slug in
``attribution["campaign"]`` (``bot.whatsapp.attribution``); an imported lead may carry a
``campaign`` column there too. Campaigns have no table of their own: this is what was seen.
One grouped scan of the leads (no index serves a JSON key): an admin page's query, not a
hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead


@dataclass(frozen=True, slots=True)
class SeenCampaign:
    """A campaign name as stored on leads, how many leads carry it and the newest one's
    arrival."""

    name: str
    leads: int
    last_lead_at: datetime


async def seen_campaigns(session: AsyncSession, *, limit: int = 200) -> list[SeenCampaign]:
    """The campaigns leads were attributed to, most leads first (at most ``limit``)."""
    name = Lead.attribution["campaign"].as_string()
    count = func.count()
    query = (
        select(name, count, func.max(Lead.created_at))
        .where(name.is_not(None), name != "")
        .group_by(name)
        .order_by(count.desc(), name)
        .limit(limit)
    )
    found: list[Any] = list(await session.execute(query))
    return [SeenCampaign(str(n), int(c), at) for n, c, at in found]
