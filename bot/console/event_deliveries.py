"""The dead letters of the signed outbound events (``/console/events``, admins only).

Each event delivery an endpoint never accepted after the outbox's last retry ends
``failed``; this page lists them newest first, with the endpoint, the event and the last
error, so an operator sees that (and why) an automation missed something. Below them, the
HubSpot sync's and the Conversions API's writes that failed or whose outcome is unknown.
"""

from __future__ import annotations

from aiohttp import web

from bot.console.auth import admin_only
from bot.console.render import render
from bot.http.appkeys import SESSIONS
from bot.http.inputs import parse_id
from crm_sync.conversions import CHANNEL as CONVERSIONS
from crm_sync.hubspot.channel import CHANNEL as HUBSPOT
from scheduler.pipeline.outbound_events import CHANNEL, endpoints
from scheduler.store.event_deliveries import failed_deliveries, failed_syncs

routes = web.RouteTableDef()
PAGE_SIZE = 100


@routes.get("/console/events")
@admin_only
async def events_page(request: web.Request) -> web.Response:
    """The failed event deliveries, newest first (``?before=<id>`` pages on)."""
    before = request.query.get("before")
    before_id = parse_id(before)
    if before is not None and before_id is None:
        raise web.HTTPBadRequest(reason="before must be an outbox row id")
    async with request.app[SESSIONS]() as db:
        failed = await failed_deliveries(db, CHANNEL, limit=PAGE_SIZE, before_id=before_id)
        syncs = await failed_syncs(db, (HUBSPOT, CONVERSIONS), limit=PAGE_SIZE)
    more = failed[-1].outbox_id if len(failed) == PAGE_SIZE else None
    context = {"failed": failed, "endpoints": endpoints(), "more": more, "syncs": syncs}
    return render(request, "event_deliveries.html", context)
