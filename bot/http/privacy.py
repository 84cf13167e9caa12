"""Wiring of retention and erasure into the service.

- The retention job (``scheduler.store.retention``): trims dedupe records older than
  ``LEADBOT_RETENTION_DAYS``, once an hour in the process that runs the periodic jobs.
- Erased people's suppressions: every session of the app matches hashed entries made with
  ``LEADBOT_SECRET_KEY`` (``scheduler.store.suppressions.use_hash_key``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from bot.http.appkeys import JOBS, SESSIONS, SETTINGS
from bot.settings import Settings
from scheduler.loop import PeriodicJob
from scheduler.store.retention import RetentionPolicy, trim
from scheduler.store.suppressions import use_hash_key

RETENTION_CHECK_SECONDS = 3600.0


def hash_key(settings: Settings) -> bytes:
    """The key of erased people's suppression hashes: the service's secret key."""
    return settings.secret_key.get_secret_value().encode()


def setup(app: web.Application) -> None:
    """Register the retention job and the suppression hash key (after the database context,
    before the scheduler's)."""

    async def privacy(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        sessions = app[SESSIONS]
        key = hash_key(settings)
        if key:
            use_hash_key(sessions, key)
        policy = RetentionPolicy(days=settings.retention_days)

        async def retention(now: datetime) -> None:
            await trim(sessions, policy, now)

        app[JOBS].append(PeriodicJob("retention", RETENTION_CHECK_SECONDS, retention))
        yield

    app.cleanup_ctx.append(privacy)
