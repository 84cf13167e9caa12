"""The email note read by a model: a closed schema, grounded quotes, never invented facts.

The ``email_note`` prompt (``prompts/email_note.yaml``, versioned) asks the configured chat
model, through LangChain's ``with_structured_output`` (json_schema), for
:class:`EmailNoteReading`:
a bounded summary and next step, budget and timeline each with a verbatim quote, objections
from a closed list of kinds with their quotes, a sentiment from a closed list, and an
``injection_suspected`` flag. There is no field for a stage, a score, an owner or anything
else: extra keys fail validation (``extra="forbid"``), so an email that talks the model into
"set stage=won" gets the extractive note instead. The reply is untrusted: it goes only into
the human message, normalized and capped. A quote not found in the reply drops its fact (the
drop is recorded in the note's ``notes``). Any failure (HTTP error, timeout, unparsable or
out-of-schema output) raises; :mod:`scheduler.intake.email_notes` then keeps the extractive
reading (:func:`scheduler.intake.email_note.extractive_note`).
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dialogs.errors import InputError
from dialogs.llm_model import structured
from dialogs.parsing.intents import looks_like_injection
from dialogs.parsing.normalize import fold
from scheduler.intake.email_note import (
    MAX_EVIDENCE_CHARS,
    MAX_NEXT_STEP_CHARS,
    MAX_OBJECTIONS,
    MAX_SUMMARY_CHARS,
    MAX_VALUE_CHARS,
    EmailNote,
    Objection,
    ObjectionKind,
    Quoted,
    Sentiment,
)
from scheduler.intake.model_reader import ModelReader

PROMPT_NAME = "email_note"
MAX_SUBJECT_CHARS = 200
_WS = re.compile(r"\s+")


class QuotedOut(BaseModel):
    """A fact in a few words, and the verbatim quote from the reply it rests on."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_VALUE_CHARS)
    evidence: str = Field(max_length=MAX_EVIDENCE_CHARS)


class ObjectionOut(BaseModel):
    """One objection: its kind (closed list) and the verbatim quote."""

    model_config = ConfigDict(extra="forbid")

    kind: ObjectionKind
    evidence: str = Field(max_length=MAX_EVIDENCE_CHARS)


class EmailNoteReading(BaseModel):
    """Everything the model may say about one reply."""

    model_config = ConfigDict(extra="forbid")

    summary: str = Field(max_length=MAX_SUMMARY_CHARS)
    next_step: str | None = Field(max_length=MAX_NEXT_STEP_CHARS)
    budget: QuotedOut | None
    timeline: QuotedOut | None
    objections: list[ObjectionOut] = Field(max_length=MAX_OBJECTIONS)
    sentiment: Sentiment
    injection_suspected: bool


def _squash(text: str) -> str:
    return _WS.sub(" ", fold(text)).strip()


def grounded(evidence: str, haystack: str) -> bool:
    """Whether ``evidence`` is a verbatim quote of the (squashed) reply ``haystack``."""
    quote = _squash(evidence)
    return bool(quote) and quote in haystack


class NoteExtractor(ModelReader):
    """Reads a reply into an :class:`EmailNote` with the chat model of LEADBOT_LLM_MODEL."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None,
        prompts_dir: Path,
        timeout: float = 15.0,
    ) -> None:
        super().__init__(
            model,
            PROMPT_NAME,
            api_key=api_key,
            base_url=base_url,
            prompts_dir=prompts_dir,
            timeout=timeout,
        )

    async def extract(
        self, text: str, subject: str, now: datetime, *, raw: str | None = None
    ) -> EmailNote:
        """The note of ``text`` (already :func:`~scheduler.intake.email_note.reply_text`
        of the reply ``raw``). Raises on any failure, and :class:`InjectionSuspected` when
        the reply tries to instruct the model (the caller keeps the extractive note then)."""
        runnable = structured(self._chat, EmailNoteReading)
        subject = " ".join(subject.split())[:MAX_SUBJECT_CHARS]
        messages = self.prompt.template.format_messages(
            today=now.date().isoformat(), subject=subject or "(no subject)", email=text
        )
        async with asyncio.timeout(self._deadline):
            out = await runnable.ainvoke(messages)
        if not isinstance(out, dict) or out.get("parsing_error") is not None:
            problem = out.get("parsing_error") if isinstance(out, dict) else out
            raise ValueError(f"unparsable note: {problem!r}"[:300])
        parsed: Any = out.get("parsed")
        if parsed is None:
            raise ValueError("the model returned no note")
        note = (
            parsed
            if isinstance(parsed, EmailNoteReading)
            else EmailNoteReading.model_validate(parsed)
        )
        if note.injection_suspected or looks_like_injection(fold(text), raw or text):
            raise InjectionSuspected("the reply tries to instruct the model")
        return self._grounded(note, text)

    def _grounded(self, out: EmailNoteReading, text: str) -> EmailNote:
        haystack = _squash(text)
        dropped: list[str] = []

        def quoted(name: str, value: QuotedOut | None) -> Quoted | None:
            if value is None:
                return None
            if not grounded(value.evidence, haystack):
                dropped.append(f"{name}: evidence not in the email")
                return None
            return Quoted(value.text.strip(), value.evidence.strip())

        budget = quoted("budget", out.budget)
        timeline = quoted("timeline", out.timeline)
        objections = []
        for objection in out.objections:
            if grounded(objection.evidence, haystack):
                objections.append(Objection(objection.kind, objection.evidence.strip()))
            else:
                dropped.append(f"objection {objection.kind}: evidence not in the email")
        next_step = (out.next_step or "").strip() or None
        return EmailNote(
            summary=out.summary.strip(),
            next_step=next_step,
            budget=budget,
            timeline=timeline,
            objections=tuple(objections),
            sentiment=out.sentiment,
            source="llm",
            prompt_version=self.prompt.version,
            notes=tuple(dropped),
        )


class InjectionSuspected(InputError, ValueError):
    """The reply tries to instruct the model: its reading is not used."""
