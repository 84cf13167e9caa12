"""``leadbot crm backfill``: push every existing lead to HubSpot, in pages, flat memory.

The leads are walked by id in pages (a keyset: one page in memory at a time); each page
becomes sync rows ``hubspot:lead:<id>:backfill:<run>`` stored in one transaction, which the
caller then delivers (:meth:`scheduler.delivery.outbox.Dispatcher.deliver_many`). A page that
fails (HubSpot down, throttled) stays in the outbox as pending rows and is retried by the
service's outbox job, so an outage mid-backfill loses nothing; the upserts are idempotent,
so nothing is created twice either. ``run`` names the backfill: running it again with a new
run pushes everything again (harmless), with the same run only what was never stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from crm_sync.hubspot.subscriber import sync_row
from scheduler.store import Sessions, hubspot_sync
from scheduler.store.outbox import enqueue_many

PAGE = 100  # leads a page: one batch of the channel (HubSpot's batch limit)


async def total(sessions: Sessions) -> int:
    """How many leads a backfill walks (those not erased)."""
    async with sessions() as session:
        return await hubspot_sync.count_leads(session)


async def pages(
    sessions: Sessions, run: str, now: datetime, *, page: int = PAGE
) -> AsyncIterator[list[int]]:
    """Store the sync rows of each page of leads; yield each page's row ids (stored now or
    by an earlier attempt of the same run)."""
    after = 0
    while True:
        async with sessions.begin() as session:
            lead_ids = await hubspot_sync.lead_ids_after(session, after, page)
            if not lead_ids:
                return
            rows = [sync_row(i, f"backfill:{run}", now, kind="backfill") for i in lead_ids]
            ids, _ = await enqueue_many(session, rows)
        after = lead_ids[-1]
        yield list(ids.values())
