"""``leadbot crm``: the CRM mirror from the command line (``backfill``: push existing leads).

``backfill`` walks every lead (not erased) by id, a page at a time (flat memory), stores a
sync row per lead (``hubspot:lead:<id>:backfill:<run>``) and delivers each page at once
through the HubSpot channel, with a progress bar. What HubSpot did not take (an outage, a
spent daily budget) stays pending in the outbox: the service's outbox job retries it, and
the command says how many. Safe to run again: every write is an idempotent upsert.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli.support import console, err_console, fail, open_store, settings_or_exit

if TYPE_CHECKING:
    from bot.settings import Settings

app = typer.Typer(help="The CRM mirror (HubSpot).")


@app.command("backfill")
def backfill(
    run: Annotated[
        str,
        typer.Option(help="Names this backfill; the same name again pushes only what it missed."),
    ] = "",
    page: Annotated[int, typer.Option(min=1, max=100, help="Leads per batch.")] = 100,
) -> None:
    """Push every existing lead to HubSpot (contact, deal, notes), with a progress bar."""
    settings = settings_or_exit()
    counts = asyncio.run(_backfill(settings, run, page))
    console.print(
        f"leads: {counts['total']}  synced: {counts['sent']}  "
        f"retrying later: {counts['pending']}  failed: {counts['failed']}"
    )
    if counts["failed"]:
        raise typer.Exit(1)


async def _backfill(settings: Settings, run: str, page: int) -> dict[str, int]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from bot.crm.hubspot import hubspot_channel, hubspot_config
    from crm_sync.hubspot import backfill as pages
    from crm_sync.hubspot.channel import CHANNEL
    from scheduler.delivery.outbox import Dispatcher
    from scheduler.store.engine import session_factory
    from scheduler.store.models import utcnow

    config = hubspot_config(settings)
    if config is None:
        raise fail("LEADBOT_HUBSPOT_TOKEN is not set: there is no HubSpot to push to")
    now = utcnow()
    run = run or now.strftime("%Y%m%dT%H%M%SZ")
    counts = {"total": 0, "sent": 0, "pending": 0, "failed": 0}
    async with open_store(settings, upgrade=settings.is_sqlite) as engine:
        sessions = session_factory(engine)
        channel = hubspot_channel(config, sessions)
        sender = Dispatcher(sessions, {CHANNEL: channel})
        try:
            total = await pages.total(sessions)
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
            ) as progress:
                task = progress.add_task(f"HubSpot backfill {run}", total=total)
                async for ids in pages.pages(sessions, run, now, page=page):
                    states = await sender.deliver_many(ids, utcnow())
                    counts["total"] += len(ids)
                    for state in states.values():
                        key = state if state in counts else "pending"
                        counts[key] += 1
                    progress.advance(task, len(ids))
        finally:
            await sender.close()
            await channel.aclose()
    return counts
