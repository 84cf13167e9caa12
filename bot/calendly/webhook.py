"""``POST /webhooks/calendly``: Calendly v2 webhooks, verified, applied once, answered fast.

Order: the ``Calendly-Webhook-Signature`` (``t=<unix>,v1=<hex>``: HMAC-SHA256 of
``f"{t}."`` + the raw body with ``LEADBOT_CALENDLY_SIGNING_KEY``) is checked over the exact
bytes (401 missing or unreadable, 403 wrong or older than 180 s), then the JSON is parsed,
then the event is applied in one transaction (:mod:`bot.calendly.bookings`), then 200. An unsigned
body stores nothing. A signed body is never answered 500 for what it carries (Calendly
retries for 24 h, then disables the subscription): one that cannot be parsed or applied is
judged unusable, recorded in ``processed_events`` (source ``calendly:unusable``, key: a
hash of the body and the reason) and logged, and answered 200 ``{"status": "unusable"}``.
Rep notifications are delivered after the commit, off the request path, so Calendly gets
its 2xx at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Iterable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from bot.calendly.bookings import BookingContext, EventError, apply_event
from bot.http.appkeys import DISPATCHER, SESSIONS, SETTINGS
from bot.http.errors import ApiError, WebhookSignatureError, parse_json_object
from bot.http.followups import CADENCE
from bot.http.inputs import clean_text
from bot.notify import RepOptions
from scheduler.errors import StoreError
from scheduler.store import DataError, events
from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.calendly")

HEADER = "Calendly-Webhook-Signature"
UNUSABLE = "calendly:unusable"
# What a signed body can carry that makes it unusable, rather than the service broken:
# DataError is the database refusing a value (too long, out of range), never a lost link.
_UNUSABLE_ERRORS = (
    EventError,
    StoreError,
    ValidationError,
    DataError,
    TypeError,
    ValueError,
    AttributeError,
    KeyError,
)
TOLERANCE_SECONDS = 180
_TASKS = web.AppKey("calendly_tasks", set[asyncio.Task[None]])

routes = web.RouteTableDef()


def sign(key: str, body: bytes, timestamp: int) -> str:
    """The header value Calendly sends for ``body`` at ``timestamp``."""
    digest = hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    key: str, body: bytes, header: str | None, *, now: float, tolerance: int = TOLERANCE_SECONDS
) -> None:
    """Return when ``header`` signs ``body`` with ``key`` within ``tolerance`` seconds of
    ``now`` (unix time); raise :class:`WebhookSignatureError`. Constant-time comparison."""
    if not header:
        raise WebhookSignatureError(
            f"missing {HEADER} header", status=401, code="signature_missing"
        )
    # Parsed as a list of k=v pairs: only v1 is defined today, others may come.
    pairs = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(pairs["t"])
        given = pairs["v1"].strip().lower()
    except (KeyError, ValueError):
        raise WebhookSignatureError(
            f"{HEADER} must look like t=<unix>,v1=<hex>", status=401, code="signature_malformed"
        ) from None
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureError(
            f"{HEADER} timestamp is more than {tolerance}s away",
            status=403,
            code="signature_expired",
        )
    expected = sign(key, body, timestamp).rsplit("v1=", 1)[1]
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise WebhookSignatureError(
            f"{HEADER} does not match the body", status=403, code="bad_signature"
        )


@routes.post("/webhooks/calendly")
async def receive(request: web.Request) -> web.Response:
    """Verify, apply in one transaction, answer 200, then deliver rep notifications."""
    app = request.app
    settings = app[SETTINGS]
    key = settings.calendly_signing_key.get_secret_value()
    if not key:
        raise ApiError(503, "not_configured", "LEADBOT_CALENDLY_SIGNING_KEY is not configured")
    raw = await request.read()
    try:
        verify(key, raw, request.headers.get(HEADER), now=time.time())
    except WebhookSignatureError as exc:
        raise ApiError(exc.status, exc.code, str(exc)) from None
    try:
        body = parse_json_object(raw)
    except ApiError as exc:
        return await _unusable(app, raw, exc.message)
    ctx = BookingContext(
        reps=RepOptions.from_settings(settings),
        cadence=app.get(CADENCE),
        default_region=settings.default_region,
    )
    now = utcnow()
    try:
        async with app[SESSIONS].begin() as session:
            outcome = await apply_event(session, body, now=now, ctx=ctx)
    except EventError as exc:
        return await _unusable(app, raw, str(exc))
    except _UNUSABLE_ERRORS as exc:
        log.exception("calendly event could not be applied")
        return await _unusable(app, raw, f"{type(exc).__name__}: {exc}")
    if outcome.status == "ignored":
        log.info("calendly event %r ignored", body.get("event"))
    if outcome.outbox_ids:
        _spawn(app, _deliver(app, outcome.outbox_ids))
    return web.json_response({"status": outcome.status, "lead_id": outcome.lead_id})


async def _unusable(app: web.Application, raw: bytes, reason: str) -> web.Response:
    """Record a signed body we cannot use (once per body and reason) and answer 200."""
    digest = hashlib.sha256(raw).hexdigest()[:32]
    reason = clean_text(reason)[:400]
    log.warning("calendly event %s judged unusable: %s", digest, reason)
    async with app[SESSIONS].begin() as session:
        await events.record_processed(session, UNUSABLE, f"{digest} {reason}", utcnow())
    return web.json_response({"status": "unusable", "reason": reason})


async def _deliver(app: web.Application, ids: Iterable[int]) -> None:
    dispatcher = app[DISPATCHER]
    for item_id in ids:
        try:
            await dispatcher.deliver(item_id, utcnow())
        except Exception:  # the outbox sweep retries what is still pending
            log.exception("delivering rep notification %s failed", item_id)


def _spawn(app: web.Application, work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(work)
    app[_TASKS].add(task)
    task.add_done_callback(app[_TASKS].discard)


async def _tasks(app: web.Application) -> AsyncIterator[None]:
    app[_TASKS] = set()
    yield
    # Let notifications in flight finish before the channels and the database close.
    await asyncio.gather(*app[_TASKS], return_exceptions=True)


def setup(app: web.Application) -> None:
    """Register the route and the context that owns its background deliveries."""
    app.router.add_routes(routes)
    app.cleanup_ctx.append(_tasks)
