"""The aiohttp application factory: the composition root of the service."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from bot import console, script_catalog
from bot.calendly import webhook as calendly
from bot.channels import build_channels, close_channels
from bot.console.auth import console_auth
from bot.crm import hubspot_webhook
from bot.email import first_touch_service as first_touch
from bot.email import unsubscribe
from bot.email import webhook as email_webhook
from bot.http import api_leads, digest_links, followups, forms, openapi, privacy
from bot.http.appkeys import (
    CHANNELS,
    DISPATCHER,
    ENGINE,
    JOBS,
    METRICS,
    ON_LEAD_CREATED,
    SESSIONS,
    SETTINGS,
)
from bot.http.auth import bearer_auth
from bot.http.errors import json_errors
from bot.http.health import setup as health_setup
from bot.http.metrics import Metrics
from bot.http.security_headers import security_headers
from bot.settings import Settings
from bot.whatsapp import webhook as whatsapp_inbound
from scheduler.delivery.outbox import Dispatcher
from scheduler.loop import PeriodicJob, SchedulerLoop
from scheduler.store import Engine
from scheduler.store.engine import create_engine, session_factory

log = logging.getLogger("leadbot.app")


async def freeze_heap(_app: web.Application) -> None:
    """Take what exists once the service has started out of the cyclic GC's sight.

    Modules, scripts, settings, the engine: hundreds of thousands of objects that live as
    long as the process. A full collection walks all of them (tens of milliseconds of CPU,
    during which no webhook is answered, every few thousand requests: ``bench/README.md``);
    frozen, it walks only what was made since. Garbage is collected first, so none of it is
    kept forever.
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    run_scheduler: bool = True,
    freeze: bool = False,
) -> web.Application:
    """Build the service.

    An ``engine`` passed in is used and left open (the caller owns it); otherwise one is
    created from ``settings.database_url`` and disposed on shutdown. ``run_scheduler=False``
    makes a web-only worker: periodic jobs then run in another process (``leadbot scheduler``).
    ``freeze=True`` (the service's process, not a test's) runs :func:`freeze_heap` once
    started.
    """
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            metrics.middleware,
            json_errors,
            bearer_auth(settings.api_token.get_secret_value()),
            console_auth,
        ],
    )
    app.on_response_prepare.append(security_headers)
    app[SETTINGS] = settings
    app[METRICS] = metrics
    app[JOBS] = []
    app[ON_LEAD_CREATED] = []

    async def database(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        app[ENGINE] = engine if engine is not None else create_engine(settings.database_url)
        app[SESSIONS] = session_factory(app[ENGINE])
        yield
        if own:
            await app[ENGINE].dispose()

    async def delivery(app: web.Application) -> AsyncIterator[None]:
        app[CHANNELS] = build_channels(settings, app[SESSIONS])
        dispatcher = Dispatcher(app[SESSIONS], app[CHANNELS])
        app[DISPATCHER] = dispatcher

        async def deliver_due(now: datetime) -> None:
            await dispatcher.reap(now)
            await dispatcher.deliver_due(now, follow=True)

        app[JOBS].append(PeriodicJob("outbox", 5, deliver_due))
        yield
        await dispatcher.close()
        await close_channels(app[CHANNELS])

    async def scheduler(app: web.Application) -> AsyncIterator[None]:
        loop = SchedulerLoop(app[JOBS])
        if run_scheduler:
            loop.start()
        yield
        await loop.stop()

    # Order matters: each context may use what the ones before it set up, and the scheduler
    # starts last, once every component has registered its jobs.
    app.cleanup_ctx.append(database)
    privacy.setup(app)  # first after the database: every session matches erased suppressions
    app.cleanup_ctx.append(delivery)
    # -- components register here (routes, contexts, jobs) --
    app.router.add_routes(unsubscribe.routes)
    email_webhook.setup(app)  # the inbound route, and the notes read from replies
    followups.setup(app)
    script_catalog.setup(app)  # before the first touch and WhatsApp: both run on its scripts
    first_touch.setup(app)  # after followups: uses its cadence and sweeper
    whatsapp_inbound.setup(app)
    calendly.setup(app)
    health_setup(app)  # /healthz: the database and whatever components registered
    app.router.add_get("/metrics", metrics.handle)
    # forms: the same intake; HubSpot's webhook: deal stage changes (README "HubSpot");
    # digest_links: the reactivation digest's one-click links
    app.router.add_routes(
        [*api_leads.routes, *forms.routes, *hubspot_webhook.routes, *digest_links.routes]
    )
    app.router.add_routes(openapi.routes)
    console.setup(app)
    app.cleanup_ctx.append(scheduler)
    if freeze:
        app.on_startup.append(freeze_heap)  # after every context above has started
    return app
