"""``POST /webhooks/hubspot``: HubSpot deal stage changes, verified, applied once.

Order: the ``X-HubSpot-Signature-v3`` is checked over the exact raw bytes, the method, the
URI HubSpot called and the timestamp (:mod:`crm_sync.hubspot.signature`; 401 missing, 403
wrong or older than 5 minutes), *then* the body is parsed (a JSON list of events; 400
otherwise), then every event is applied in one transaction
(:func:`crm_sync.hubspot.inbound.apply_events`: deduped by ``eventId``, stage changes through
the stage machine, illegal ones recorded) and answered 200 with each event's outcome.

The URI: behind a proxy the service does not see the URL HubSpot called, so with
``LEADBOT_PUBLIC_URL`` set it is that URL plus the request's path and query; without, the
request's own URL. The subscription's target URL must be ``<public url>/webhooks/hubspot``.
"""

from __future__ import annotations

import time

from aiohttp import web

from bot.crm.hubspot import stage_map
from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.errors import ApiError
from bot.http.inputs import RequestInputError, loads
from crm_sync.hubspot.inbound import apply_events
from crm_sync.hubspot.signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    signed_uri,
    verify,
)
from scheduler.store.models import utcnow

MAX_EVENTS = 100  # HubSpot sends at most 100 events a request

routes = web.RouteTableDef()


@routes.post("/webhooks/hubspot")
async def receive(request: web.Request) -> web.Response:
    """Verify, apply in one transaction, answer 200 with each event's outcome."""
    settings = request.app[SETTINGS]
    secret = settings.hubspot_client_secret.get_secret_value()
    if not secret:
        raise ApiError(503, "not_configured", "LEADBOT_HUBSPOT_CLIENT_SECRET is not configured")
    raw = await request.read()
    public = settings.public_url.rstrip("/")
    # The raw path, as HubSpot signed it (aiohttp's path_qs is normalised: %7E becomes ~).
    base = public or f"{request.scheme}://{request.host}"
    uri = signed_uri(base, request.raw_path)
    try:
        verify(
            secret,
            method=request.method,
            uri=uri,
            body=raw,
            signature=request.headers.get(SIGNATURE_HEADER),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            now_ms=int(time.time() * 1000),
        )
    except SignatureError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    try:
        items = loads(raw)
    except RequestInputError as exc:
        raise ApiError(400, "malformed_json", str(exc)) from None
    if not isinstance(items, list) or len(items) > MAX_EVENTS:
        raise ApiError(
            400, "malformed_events", f"the body must be a JSON list of ≤ {MAX_EVENTS} events"
        )
    async with request.app[SESSIONS].begin() as session:
        outcomes = await apply_events(session, items, stage_map(settings), utcnow())
    return web.json_response({"results": [o.as_json() for o in outcomes]})
