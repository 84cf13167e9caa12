"""Workflow 2 in the service: the email fast first touch after ``POST /api/leads``.

``setup(app)`` (call after ``followups.setup``: it needs the cadence and the sweeper)
registers:

- a response hook: a ``201`` from ``POST /api/leads`` hands the new lead to a tracked
  background task, so the intake answers at once;
- a cleanup context that builds the flow (:class:`scheduler.intake.first_touch.FirstTouch`
  with the ICP, the slots of the script's current version (:mod:`bot.script_catalog`), an
  LLM extractor and an HTTP enrichment provider when configured) and a runner whose one
  worker, woken after each lead, runs the sweeper (the only sending path) and then emails
  reps the approval links of held first replies;
- the periodic safety job ``first_touch.safety``: new email leads a task missed (a crash,
  a restart) are processed, and held first replies whose link was not sent get one;
- the approval pages (:mod:`bot.http.approval_links`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from bot.http.appkeys import DISPATCHER, JOBS, ON_LEAD_CREATED, SESSIONS, SETTINGS
from bot.http.approval_links import routes as approval_routes
from bot.http.approval_links import send_approval_links
from bot.http.followups import CADENCE, SWEEPER
from bot.script_catalog import CATALOG
from bot.settings import Settings
from dialogs.icp import load_icp
from dialogs.loader import load_scripts
from dialogs.script import Script
from scheduler.delivery.outbox import Dispatcher
from scheduler.followups.sweeper import Sweeper
from scheduler.intake.email_qualify import EmailQualifier, FactExtractor
from scheduler.intake.enrichment import EnrichmentProvider
from scheduler.intake.enrichment.http import HttpEnrichmentProvider
from scheduler.intake.first_touch import (
    FirstTouch,
    FirstTouchConfig,
    FirstTouchOutcome,
    UnprocessedScan,
)
from scheduler.loop import PeriodicJob
from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.first_touch")


class FirstTouchRunner:
    """Runs the flow for leads handed over by requests, and wakes one delivery worker."""

    def __init__(
        self, flow: FirstTouch, sweeper: Sweeper, dispatcher: Dispatcher, settings: Settings
    ) -> None:
        self.flow = flow
        self.sweeper = sweeper
        self.dispatcher = dispatcher
        self.settings = settings
        first = flow.cadence.sequence(flow.config.sequence).steps[0]
        self._first_step = first.id
        self._scan = UnprocessedScan(flow.config)
        self._tasks: set[asyncio.Task[FirstTouchOutcome | None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the delivery worker (inside the running loop)."""
        self._worker = asyncio.create_task(self._work(), name="first_touch.worker")

    def submit(self, lead_id: int) -> None:
        """Process ``lead_id`` in the background (the request does not wait)."""
        task = asyncio.create_task(self._process(lead_id), name=f"first_touch.lead.{lead_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, lead_id: int) -> FirstTouchOutcome | None:
        try:
            outcome = await self.flow.process(lead_id, utcnow())
        except Exception:  # the safety job retries the lead; never crash the loop
            log.exception("first touch for lead %s failed", lead_id)
            return None
        if outcome is not None and outcome.started:
            self.wake()
        return outcome

    def wake(self) -> None:
        """Ask the worker for a sweep (calls coalesce while one runs)."""
        self._idle.clear()
        self._wake.set()

    async def _work(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.deliver()
            except Exception:
                log.exception("first touch delivery failed")
            if not self._wake.is_set():
                self._idle.set()

    async def deliver(self) -> None:
        """Sweep due touches (the T+0 replies among them), then send approval links."""
        now = utcnow()
        await self.sweeper.sweep(now)
        ids = await send_approval_links(
            self.flow.sessions,
            self.settings,
            sequence=self.flow.config.sequence,
            step=self._first_step,
            now=now,
        )
        for item_id in ids:
            await self.dispatcher.deliver(item_id, now)

    async def safety(self, now: datetime) -> int:
        """The periodic job: process leads the tasks missed, send missing approval links."""
        async with self.flow.sessions() as session:
            lead_ids = await self._scan.next(session, now)
        for lead_id in lead_ids:
            await self._process(lead_id)
        await self.deliver()
        return len(lead_ids)

    async def drain(self) -> None:
        """Wait until every handed-over lead is processed and the worker is idle."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self._idle.wait()

    async def close(self) -> None:
        """Finish what was handed over, then stop the worker."""
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._stopping = True
        self._wake.set()
        if self._worker is not None:
            await self._worker


RUNNER = web.AppKey("first_touch_runner", FirstTouchRunner)


def build_flow(
    settings: Settings, app: web.Application, provider: EnrichmentProvider | None
) -> FirstTouch:
    """The flow as the settings describe it (a bad ICP or script fails start-up)."""
    icp = load_icp(settings.icp_file)
    script = load_scripts(settings.dialogs_dir, prompts_dir=settings.prompts_dir)[
        settings.whatsapp_script
    ]
    extractor = None
    if settings.llm_enabled:
        extractor = FactExtractor(
            settings.llm_model,
            api_key=settings.llm_key,
            base_url=settings.openai_base_url or None,
            prompts_dir=settings.prompts_dir,
        )
    actors = ("intake", "import") if settings.import_first_touch else ("intake",)
    config = FirstTouchConfig(cold_leads=settings.cold_leads, actors=actors)

    def current_script() -> Script:
        # The catalog's current version once the app has loaded it (a version published in
        # the console qualifies email leads too); until then the file read above.
        catalog = app.get(CATALOG)
        if catalog is not None and settings.whatsapp_script in catalog:
            return catalog.current(settings.whatsapp_script)
        return script

    qualifier = EmailQualifier(icp, current_script, extractor=extractor)
    return FirstTouch(app[SESSIONS], app[CADENCE], qualifier, provider=provider, config=config)


def setup(app: web.Application) -> None:
    """Register the hook, the context, the safety job and the approval pages."""

    async def first_touch(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        provider = None
        if settings.enrichment_url:
            provider = HttpEnrichmentProvider(
                settings.enrichment_url,
                token=settings.enrichment_token.get_secret_value(),
                timeout=settings.enrichment_timeout,
            )
        runner = FirstTouchRunner(
            build_flow(settings, app, provider), app[SWEEPER], app[DISPATCHER], settings
        )
        app[RUNNER] = runner
        if settings.first_touch:
            app[ON_LEAD_CREATED].append(runner.submit)
            app[JOBS].append(
                PeriodicJob(
                    "first_touch.safety", settings.first_touch_check_seconds, runner.safety
                )
            )
        runner.start()
        yield
        await runner.close()
        if provider is not None:
            await provider.aclose()

    app.cleanup_ctx.append(first_touch)
    app.router.add_routes(approval_routes)


__all__ = ["RUNNER", "FirstTouchRunner", "build_flow", "setup"]
