"""Notes from emails in the service: each inbound reply read into a note on its lead.

``setup(app)`` (called by ``bot.email.webhook.setup``) registers a cleanup context that
builds :class:`scheduler.intake.email_notes.EmailNotes` (the rules read the catalog's
current script; the ``email_note`` prompt's model reads the reply when
``LEADBOT_LLM_MODEL`` and a key are set) and a runner:

- ``POST /webhooks/email`` hands each reply's message id to :meth:`NotesRunner.submit` once
  its transaction committed; the note is made in a tracked background task, so the provider
  gets its 200 at once and a slow or failing model costs the webhook nothing;
- the periodic job ``email_notes.catch_up`` notes the recent replies a task missed (a crash
  or a restart between the commit and the note).

``LEADBOT_EMAIL_NOTES=false`` turns both off (the replies are stored and handled as ever).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from bot.http.appkeys import JOBS, SESSIONS, SETTINGS
from bot.script_catalog import CATALOG
from bot.settings import Settings
from dialogs.loader import load_scripts
from dialogs.script import Script
from scheduler.intake.email_note_llm import NoteExtractor
from scheduler.intake.email_notes import EmailNotes
from scheduler.loop import PeriodicJob
from scheduler.store import Sessions
from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.email_notes")


class NotesRunner:
    """Makes notes for replies handed over by the webhook, each in its own task."""

    def __init__(self, notes: EmailNotes) -> None:
        self.notes = notes
        self._tasks: set[asyncio.Task[int | None]] = set()

    def submit(self, message_id: int) -> None:
        """Note the reply ``message_id`` in the background (the request does not wait)."""
        task = asyncio.create_task(self._note(message_id), name=f"email_note.{message_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _note(self, message_id: int) -> int | None:
        try:
            return await self.notes.note_reply(message_id, utcnow())
        except Exception:  # the catch-up job tries again; never crash the loop
            log.exception("email note for message %s failed", message_id)
            return None

    async def drain(self) -> None:
        """Wait until every handed-over reply is noted (tests; shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


NOTES = web.AppKey("email_notes", NotesRunner)


def build_notes(settings: Settings, sessions: Sessions, app: web.Application) -> EmailNotes:
    """The note maker as the settings describe it (a bad prompt file fails start-up)."""
    script = load_scripts(settings.dialogs_dir, prompts_dir=settings.prompts_dir)[
        settings.whatsapp_script
    ]
    extractor = None
    if settings.llm_enabled:
        extractor = NoteExtractor(
            settings.llm_model,
            api_key=settings.llm_key,
            base_url=settings.openai_base_url or None,
            prompts_dir=settings.prompts_dir,
            timeout=settings.email_notes_timeout,
        )

    def current_script() -> Script:
        # The catalog's current version once loaded (a version published in the console
        # defines the slots the rules look for); until then the file read above.
        catalog = app.get(CATALOG)
        if catalog is not None and settings.whatsapp_script in catalog:
            return catalog.current(settings.whatsapp_script)
        return script

    return EmailNotes(sessions, current_script, extractor=extractor)


def setup(app: web.Application) -> None:
    """Register the context that builds the runner and its catch-up job."""

    async def email_notes(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if not settings.email_notes:
            yield
            return
        notes = build_notes(settings, app[SESSIONS], app)
        runner = NotesRunner(notes)
        app[NOTES] = runner
        app[JOBS].append(
            PeriodicJob("email_notes.catch_up", settings.email_notes_check_seconds, notes.catch_up)
        )
        yield
        await runner.drain()

    app.cleanup_ctx.append(email_notes)


__all__ = ["NOTES", "NotesRunner", "build_notes", "setup"]
