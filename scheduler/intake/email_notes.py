"""Notes from emails: each inbound email reply becomes one structured note on its lead.

Why a job over stored messages, not work inside the webhook: the webhook's transaction
stores the reply (with its dedup record) and answers the provider at once; reading the reply
may take a model up to its timeout, which must neither hold a database transaction open nor
make the provider wait (and retry). So the reply is never lost (it is committed before the
200) and the note is made afterwards, by :meth:`EmailNotes.note_reply`: handed the message
id right after the webhook commits, and again by a periodic scan
(:meth:`EmailNotes.unnoted`) for replies a crash or a restart left without one.

Once per message: the note is stored in one transaction with the ``processed_events`` row
``("email-note", "<message id>")``, whose UNIQUE key lets only the first writer through (two
workers racing on one reply, a redelivered email, a scan after the task already ran: one
note). The model is called outside any transaction; the write locks the lead first (the
store's lock order) and re-reads the reply, so an erasure meanwhile leaves no note behind.

A reply that only opts out (the webhook marks it ``payload["opt_out"]``) or says nothing
gets no note; it is recorded as done all the same. The stored note (``kind`` "email",
``body`` the summary, ``data`` :meth:`EmailNote.data` plus ``message_id``,
``email_message_id`` and ``subject``) goes to the CRM and the automation endpoints as the
outbound event ``lead.note_added`` in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from dialogs.interpreters.rules import RulesInterpreter
from dialogs.parsing.intents import looks_like_injection
from dialogs.parsing.normalize import fold
from dialogs.script import Script
from scheduler.intake.email_note import EmailNote, extractive_note, reply_text
from scheduler.intake.email_note_llm import InjectionSuspected, NoteExtractor
from scheduler.pipeline.outbound_events import Event, EventKind, emit
from scheduler.store import Session, Sessions, events
from scheduler.store import leads as lead_store
from scheduler.store import notes as note_store
from scheduler.store.models import Message

log = logging.getLogger("leadbot.email_notes")

DONE = "email-note"
"""``processed_events.source`` of replies already read into a note (key: the message id)."""
AUTHOR = "email"
LOOKBACK = timedelta(days=7)
"""How far back the scan looks: within the shortest retention of ``processed_events``
(``LEADBOT_RETENTION_DAYS`` is at least 8), so a reply's done-record outlives its scan."""


class EmailNotes:
    """Makes the note of a reply; ``extractor`` (a model) is optional.

    ``script`` is the script whose slots the rules interpreter reads (budget, timeline, …),
    or a function returning the current one."""

    def __init__(
        self,
        sessions: Sessions,
        script: Script | Callable[[], Script],
        *,
        extractor: NoteExtractor | None = None,
        lookback: timedelta = LOOKBACK,
    ) -> None:
        self.sessions = sessions
        self._script = script
        self.extractor = extractor
        self.lookback = lookback
        self.rules = RulesInterpreter()
        self._after = 0

    @property
    def script(self) -> Script:
        """The script read against now."""
        return self._script if isinstance(self._script, Script) else self._script()

    async def read(self, body: str, subject: str, now: datetime) -> EmailNote:
        """The note of one reply: the model's reading when configured and it succeeds,
        else the extractive one (with why in its ``notes``)."""
        script = self.script
        text = reply_text(body)
        if looks_like_injection(fold(text), body):
            return extractive_note(
                script,
                text,
                now,
                self.rules,
                injection_suspected=True,
                notes=("injection suspected: extractive note",),
            )
        if self.extractor is None:
            return extractive_note(script, text, now, self.rules)
        try:
            note = await self.extractor.extract(text, subject, now, raw=body)
        except InjectionSuspected:
            return extractive_note(
                script,
                text,
                now,
                self.rules,
                injection_suspected=True,
                notes=("injection suspected by the model: extractive note",),
            )
        except Exception as exc:  # noqa: BLE001 - any model failure: the extractive note
            log.warning("LLM email note failed (%s); extractive note", type(exc).__name__)
            return extractive_note(
                script, text, now, self.rules, notes=(f"llm failed: {type(exc).__name__}",)
            )
        # The rules' facts ride along either way (a rep sees what each reader found).
        found = extractive_note(script, text, now, self.rules)
        return EmailNote(
            summary=note.summary or found.summary,
            next_step=note.next_step,
            budget=note.budget,
            timeline=note.timeline,
            objections=note.objections,
            sentiment=note.sentiment,
            facts=found.facts,
            source=note.source,
            prompt_version=note.prompt_version,
            notes=note.notes,
        )

    async def note_reply(self, message_id: int, now: datetime) -> int | None:
        """Make the note of the reply ``message_id``; its id, or None when there is
        nothing to note or its note exists already."""
        async with self.sessions() as session:
            if await note_store.reply_noted(session, DONE, message_id):
                return None
            message = await note_store.email_reply(session, message_id)
        if message is None:
            return None
        payload = message.payload if isinstance(message.payload, dict) else {}
        if payload.get("opt_out") or not message.body.strip():
            note = None
        else:
            note = await self.read(message.body, str(payload.get("subject") or ""), now)
        async with self.sessions.begin() as session:
            return await self._store(session, message, note, now)

    async def _store(
        self, session: Session, message: Message, note: EmailNote | None, now: datetime
    ) -> int | None:
        lead = await lead_store.lock_lead(session, message.lead_id)  # the lock order: first
        if not await events.first_time(session, DONE, str(message.id), now):
            return None  # another worker noted it meanwhile
        if note is None or lead is None or lead.erased_at is not None:
            return None
        if await note_store.email_reply(session, message.id) is None:
            return None  # erased meanwhile
        payload = message.payload if isinstance(message.payload, dict) else {}
        data = {
            **note.data(),
            "message_id": message.id,
            "email_message_id": message.external_id,
            "subject": str(payload.get("subject") or "")[:300],
        }
        note_id = await note_store.add_note(
            session,
            lead.id,
            kind=note_store.NoteKind.EMAIL,
            author=AUTHOR,
            body=note.summary,
            data=data,
            now=now,
        )
        event = {"note_id": note_id, "kind": "email", "body": note.summary, **data}
        await emit(session, Event(EventKind.NOTE_ADDED, f"note:{note_id}", lead.id, now, event))
        log.info("email note %s for lead %s (%s)", note_id, lead.id, note.source)
        return note_id

    async def unnoted(self, now: datetime, *, limit: int = 100) -> list[int]:
        """The next page of recent replies without a note (round robin over runs: replies
        that keep failing never hide the ones behind them)."""
        since = now - self.lookback
        async with self.sessions() as session:
            ids = await note_store.unnoted_email_replies(
                session, done=DONE, since=since, after_id=self._after, limit=limit
            )
            if not ids and self._after:  # past the end: start over
                self._after = 0
                ids = await note_store.unnoted_email_replies(
                    session, done=DONE, since=since, limit=limit
                )
        self._after = ids[-1] if len(ids) == limit else 0
        return ids

    async def catch_up(self, now: datetime) -> int:
        """The periodic job: note the replies the webhook's hand-over missed; how many."""
        made = 0
        for message_id in await self.unnoted(now):
            try:
                made += await self.note_reply(message_id, now) is not None
            except Exception:  # the next run tries again; one bad reply stops no other
                log.exception("email note for message %s failed", message_id)
        return made
