"""The running service's dialog scripts: the files at start, console publications live.

:func:`setup` puts an empty :class:`~dialogs.catalog.ScriptCatalog` on the app
(:data:`CATALOG`) and a context that fills it at start, with the script files of
``LEADBOT_DIALOGS_DIR`` (a bad file fails start-up, as it always did) and every version
published in the console (:mod:`scheduler.store.script_versions`), and keeps it fresh: every
:data:`REFRESH_SECONDS` the :class:`CatalogRefresher` asks the store whether anything was
published (one aggregate query) and reloads the published versions when so. The process
that publishes refreshes at once; every other worker within :data:`REFRESH_SECONDS`.

The refresh is a task of its own rather than a job of the scheduler loop: web-only workers
(``leadbot serve --no-scheduler``) run no periodic jobs, yet they answer WhatsApp turns.
Files are read once, at start: a changed file needs a restart; publishing in the console
does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from bot.http.appkeys import SESSIONS, SETTINGS
from bot.settings import Settings
from dialogs.catalog import ScriptCatalog, ScriptVersionEntry
from dialogs.loader import ScriptError, load_script_text, scan_dir, with_resource_url
from dialogs.multilingual import warm
from scheduler.store import Sessions, script_versions
from scheduler.store.models import ScriptVersion
from scheduler.store.script_versions import Fingerprint

log = logging.getLogger("leadbot.scripts")
REFRESH_SECONDS = 3.0

CATALOG = web.AppKey("script_catalog", ScriptCatalog)


def file_entries(settings: Settings) -> list[ScriptVersionEntry]:
    """The script files of ``LEADBOT_DIALOGS_DIR`` (their prompts must exist), with their
    text; :class:`~dialogs.loader.ScriptError` lists every problem of a bad one."""
    found, problems = scan_dir(settings.dialogs_dir, settings.prompts_dir)
    if problems:
        raise ScriptError(problems)
    return [
        ScriptVersionEntry(
            with_resource_url(script, settings.resource_url),
            Path(path).read_text("utf-8"),
            "file",
            file=str(path),
        )
        for path, script in found.values()
    ]


class CatalogRefresher:
    """Loads the published versions into a catalog, again whenever the store changed."""

    def __init__(
        self,
        catalog: ScriptCatalog,
        sessions: Sessions,
        settings: Settings,
        files: list[ScriptVersionEntry],
    ) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self.settings = settings
        self.files = files
        self._seen: Fingerprint | None = None
        # Parsed once per stored row: rows never change (script_versions is append-only).
        self._parsed: dict[int, ScriptVersionEntry | None] = {}
        self._lock = asyncio.Lock()

    async def refresh(self) -> bool:
        """Reload the published versions if any was stored since the last look; whether
        the catalog changed."""
        async with self._lock:
            async with self.sessions() as db:
                seen = await script_versions.fingerprint(db)
                if seen == self._seen:
                    return False
                rows = await script_versions.list_versions(db)
                published = [e for e in map(self._entry, rows) if e is not None]
            self.catalog.replace(self.files, published)
            self._seen = seen
            return True

    def _entry(self, row: ScriptVersion) -> ScriptVersionEntry | None:
        if row.id not in self._parsed:
            self._parsed[row.id] = self._parse(row)
        return self._parsed[row.id]

    def _parse(self, row: ScriptVersion) -> ScriptVersionEntry | None:
        """A stored version as an entry; None (logged) when it no longer loads, e.g. its
        prompt file is gone: conversations on it continue on the current version."""
        name = f"{row.script_id} {row.version} (published)"
        try:
            script = load_script_text(row.source, name, prompts_dir=self.settings.prompts_dir)
        except ScriptError as exc:
            log.error("scripts: %s no longer loads, skipped:\n%s", name, exc)
            return None
        if (script.id, script.version) != (row.script_id, row.version):
            log.error("scripts: %s says it is %s %s, skipped", name, script.id, script.version)
            return None
        return ScriptVersionEntry(
            with_resource_url(script, self.settings.resource_url),
            row.source,
            "console",
            published_by=row.published_by,
            published_at=row.published_at,
        )

    async def run(self, every: float = REFRESH_SECONDS) -> None:
        """Refresh every ``every`` seconds until cancelled (a failure waits for the next)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh()
            except Exception:  # the database may be down a while: keep what we have
                log.exception("scripts: refreshing the published versions failed")


REFRESHER = web.AppKey("script_catalog_refresher", CatalogRefresher)


async def _catalog(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    refresher = CatalogRefresher(app[CATALOG], app[SESSIONS], settings, file_entries(settings))
    await refresher.refresh()
    app[REFRESHER] = refresher
    # The language detector takes ~2-3 s to build and holds the GIL meanwhile: build it before
    # serving (once per process), not in a prospect's first turn with every other one waiting.
    await asyncio.to_thread(warm, app[CATALOG])
    task = asyncio.create_task(refresher.run(), name="script_catalog.refresh")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def setup(app: web.Application) -> None:
    """Put the catalog on the app and register the context that fills and refreshes it
    (before the contexts that read it: the WhatsApp inbox)."""
    app[CATALOG] = ScriptCatalog()
    app.cleanup_ctx.append(_catalog)
