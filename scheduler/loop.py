"""The one APScheduler (3.x) instance that owns periodic work in a process.

Jobs are a few interval jobs (sweep due touches, deliver due outbox rows, reap stale claims,
build digests), never one job per lead: the durable state lives in our tables and each job
is a plain ``async def job(now)`` that reads them. ``max_instances=1`` and ``coalesce`` keep a
slow sweep from overlapping itself; a sweep in progress is allowed to finish on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.scheduler")

Job = Callable[[datetime], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class PeriodicJob:
    """A job run every ``seconds``; ``func`` receives the current UTC time."""

    name: str
    seconds: float
    func: Job


class SchedulerLoop:
    """Runs :class:`PeriodicJob` s on an ``AsyncIOScheduler`` in the running event loop."""

    def __init__(self, jobs: list[PeriodicJob]) -> None:
        self.jobs = list(jobs)
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the scheduler; must be called with the event loop running."""
        scheduler = AsyncIOScheduler(
            timezone="UTC",
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        for job in self.jobs:
            scheduler.add_job(
                self._run,
                "interval",
                seconds=job.seconds,
                args=[job],
                id=job.name,
                replace_existing=True,
                next_run_time=utcnow(),
            )
        scheduler.start()
        self._scheduler = scheduler
        # One line for the start; APScheduler's own per-job and per-run lines are DEBUG.
        log.info("scheduler started: %s", ", ".join(job.name for job in self.jobs) or "no jobs")

    async def _run(self, job: PeriodicJob) -> None:
        # Shield the job so APScheduler's shutdown (which cancels coroutine jobs) cannot
        # interrupt a sweep between claiming rows and recording what it sent.
        task = asyncio.ensure_future(self._guarded(job))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            # APScheduler's shutdown cancels us, not the job: stop() waits for the job.
            if not task.done():
                return
            raise

    @staticmethod
    async def _guarded(job: PeriodicJob) -> None:
        try:
            await job.func(utcnow())
        except Exception:
            log.exception("scheduled job %s failed", job.name)

    async def stop(self) -> None:
        """Stop scheduling and wait for the jobs in progress to finish."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
