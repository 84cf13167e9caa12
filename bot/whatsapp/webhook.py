"""``GET|POST /webhooks/whatsapp``: Meta's verification handshake and the updates.

POST order matters: the signature is checked over the raw bytes (401 missing, 403 wrong),
then the body is parsed (400 if it is not a webhook envelope), then everything it carries is
stored in one transaction, then 200. Nothing is stored for a rejected body. The dialog runs
afterwards in the inbox processor, so Meta gets its 200 in milliseconds whatever the LLM does.

:func:`setup` registers the routes, the processor (started with crash recovery, closed on
shutdown) and its periodic sweep on the app, and the script catalog the processor runs on
(:mod:`bot.script_catalog`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from bot.http.appkeys import DISPATCHER, ENGINE, JOBS, SESSIONS, SETTINGS
from bot.http.errors import ApiError, WebhookSignatureError
from bot.http.followups import CADENCE
from bot.http.health import CHECK_TIMEOUT, add_check
from bot.interpreters import build_interpreter
from bot.locks import KeyedLock, build_lock
from bot.script_catalog import CATALOG
from bot.settings import Settings
from bot.whatsapp import sandbox
from bot.whatsapp.envelope import EnvelopeError, parse_envelope
from bot.whatsapp.hooks import default_hooks
from bot.whatsapp.ingest import InboxWriter
from bot.whatsapp.keys import INBOX, LOCKS, WRITER
from bot.whatsapp.processor import Dialogs, InboxProcessor
from bot.whatsapp.signature import HEADER, verify
from dialogs.icp import load_icp
from scheduler.loop import PeriodicJob
from scheduler.store.parked_statuses import sweep as statuses_sweep

log = logging.getLogger("leadbot.whatsapp")
_UNSIGNED_WARNED = web.AppKey("whatsapp_unsigned_warned", list[bool])
SWEEP_SECONDS = 15
STATUS_SWEEP_SECONDS = 60  # parked delivery statuses: applied late, trimmed when stale
_OK = b'{"status": "ok"}'

routes = web.RouteTableDef()


@routes.get("/webhooks/whatsapp")
async def verify_subscription(request: web.Request) -> web.Response:
    """Meta's handshake: echo ``hub.challenge`` when mode and verify token are right."""
    expected = request.app[SETTINGS].whatsapp_verify_token.get_secret_value()
    mode = request.query.get("hub.mode", "")
    token = request.query.get("hub.verify_token", "")
    challenge = request.query.get("hub.challenge", "")
    if not expected:
        raise ApiError(403, "not_configured", "LEADBOT_WHATSAPP_VERIFY_TOKEN is not configured")
    if mode != "subscribe" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "wrong hub.mode or hub.verify_token")
    return web.Response(text=challenge, content_type="text/plain")


@routes.post("/webhooks/whatsapp")
async def receive(request: web.Request) -> web.Response:
    """Verify, parse, store in one transaction, kick the processor, answer 200."""
    settings = request.app[SETTINGS]
    raw = await request.read()
    secret = settings.whatsapp_app_secret.get_secret_value()
    if secret:
        try:
            verify(secret, raw, request.headers.get(HEADER))
        except WebhookSignatureError as exc:
            raise ApiError(exc.status, exc.code, str(exc)) from None
    elif settings.is_sqlite and not settings.whatsapp_token.get_secret_value():
        # Only embedded mode with the sandbox channel: nothing reaches a real person.
        warned = request.app[_UNSIGNED_WARNED]
        if not warned:
            warned.append(True)
            log.warning(
                "LEADBOT_WHATSAPP_APP_SECRET is not set: accepting UNSIGNED webhook bodies "
                "(embedded sandbox mode only; set it before exposing this endpoint)"
            )
    else:
        raise ApiError(403, "not_configured", "LEADBOT_WHATSAPP_APP_SECRET is not configured")
    try:
        envelope = parse_envelope(raw)
    except EnvelopeError as exc:
        raise ApiError(400, "malformed_webhook", str(exc)) from None
    result = await request.app[WRITER].write(envelope)
    request.app[INBOX].kick(*result.senders)
    return web.Response(body=_OK, content_type="application/json")


def build_processor(app: web.Application, settings: Settings, locks: KeyedLock) -> InboxProcessor:
    """The inbox processor, wired from the settings and the app's script catalog (loaded
    by then: a bad script or ICP has failed start-up)."""
    catalog = app[CATALOG]
    if settings.whatsapp_script not in catalog:
        raise RuntimeError(
            f"LEADBOT_WHATSAPP_SCRIPT={settings.whatsapp_script!r} is not a script in "
            f"{settings.dialogs_dir} ({', '.join(catalog.ids())})"
        )
    dialogs = Dialogs(
        catalog=catalog,
        default_script=settings.whatsapp_script,
        icp=load_icp(settings.icp_file),
        interpreter=build_interpreter(settings),
    )
    return InboxProcessor(
        app[SESSIONS],
        locks=locks,
        dialogs=dialogs,
        deliver=app[DISPATCHER].deliver_and_follow,
        hooks=default_hooks(settings, app[CADENCE]),
        default_region=settings.default_region,
        calendly_url=settings.calendly_url,
        burst_window=settings.burst_window_ms / 1000,
        max_attempts=settings.inbox_max_attempts,
    )


async def _inbox(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    locks = build_lock(
        settings.redis_url,
        lease=settings.lock_lease_seconds,
        max_connections=settings.redis_max_connections,
    )
    if settings.redis_url:
        add_check(app, "redis", locks.ping)
        await _check_redis(locks)
    processor = build_processor(app, settings, locks)
    app[INBOX] = processor
    app[LOCKS] = locks
    app[WRITER] = writer = InboxWriter(app[ENGINE])
    app[JOBS].append(PeriodicJob("whatsapp-inbox", SWEEP_SECONDS, processor.sweep))
    app[JOBS].append(
        PeriodicJob(
            "whatsapp-statuses", STATUS_SWEEP_SECONDS, partial(statuses_sweep, app[SESSIONS])
        )
    )
    await processor.recover()
    yield
    await writer.close()
    await processor.close()
    await locks.close()


async def _check_redis(locks: KeyedLock) -> None:
    """Say at startup when Redis is down: the service still starts (turns wait in the inbox
    and the sweep retries them once Redis is back) but /healthz answers 503 meanwhile."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await locks.ping()
    except Exception as exc:
        log.error(
            "Redis (LEADBOT_REDIS_URL) is unreachable: %s: %s; WhatsApp turns wait in the "
            "inbox until it is back",
            type(exc).__name__,
            exc,
        )


def setup(app: web.Application) -> None:
    """Register the WhatsApp webhook, the sandbox endpoints and the inbox processor (which
    runs on the app's script catalog: :func:`bot.script_catalog.setup` first)."""
    app[_UNSIGNED_WARNED] = []
    app.cleanup_ctx.append(_inbox)
    app.router.add_routes(routes)
    app.router.add_routes(sandbox.routes)
