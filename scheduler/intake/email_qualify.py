"""Qualifying an email lead: intake fields, form answers and enrichment → ICP slots → score.

The rules mapping always runs: each form answer is read by the rules interpreter as the
answer to its own question (the lead's ``answers``, keyed by a slot id or the question's
text; older integrations spell them ``attribution["timeline"] = "next month"``), a free-text
``message`` (the lead's own, else ``attribution["message"]``) fills whatever it clearly
states, and the provider's employee count fills a "people" choice (company size). When an
LLM is configured, the ``qualify_email_lead`` prompt extracts *facts only* into the script's
closed schema; each fact must quote the input verbatim
(:func:`dialogs.interpreters.grounding.ground`) and any failure falls back to the rules'
reading. :func:`dialogs.icp.score` alone computes the score and the tier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dialogs.icp import Icp, score
from dialogs.interpretation import SlotValue
from dialogs.interpreters.grounding import ground
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.interpreters.schema import Extraction, extraction_model
from dialogs.llm_model import structured
from dialogs.parsing.intents import looks_like_injection
from dialogs.parsing.normalize import fold, normalize
from dialogs.script import AnswerKind, Script
from dialogs.session import Session
from scheduler.intake.model_reader import ModelReader

log = logging.getLogger("leadbot.email_qualify")

PROMPT_NAME = "qualify_email_lead"
ANSWER_PREFIX = "answer_"
MESSAGE_KEYS = ("message", "comments", "inquiry", "enquiry")
MAX_ANSWER_CHARS = 300
MAX_MESSAGE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class EmailLead:
    """What an email lead told us: intake fields, form answers per slot, a free message."""

    name: str | None = None
    company: str | None = None
    role: str | None = None
    source: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def of(
        cls,
        fields: dict[str, Any],
        attribution: dict[str, str],
        script: Script,
        *,
        message: str = "",
        answers: Mapping[str, str] | None = None,
    ) -> EmailLead:
        """The facts of a lead: ``answers`` (keyed by a slot id, ``answer_<slot>`` or the
        question's text) and ``message`` as the form sent them; ``attribution`` keys named
        like a slot and its ``message`` key (the older spelling) where those are missing.
        The rest of ``attribution`` (utm_*, campaign ids) is not a fact. An answer to a
        question the script does not ask joins the message as a ``question: answer`` line."""
        slots = set(script.slots)
        by_text = {fold(q.text): q.slot for q in script.questions}
        found: dict[str, str] = {}
        extra: list[str] = []
        for key, value in (answers or {}).items():
            text = str(value).strip()
            slot = key.removeprefix(ANSWER_PREFIX)
            slot = slot if slot in slots else by_text.get(fold(key), "")
            if slot and text:
                found.setdefault(slot, text[:MAX_ANSWER_CHARS])
            elif text:
                extra.append(f"{key}: {text}")
        for key, value in attribution.items():
            slot = key.removeprefix(ANSWER_PREFIX)
            if slot in slots and str(value).strip():
                found.setdefault(slot, str(value).strip()[:MAX_ANSWER_CHARS])
        if not message:
            message = next((attribution[k] for k in MESSAGE_KEYS if attribution.get(k)), "")
        message = "\n".join([str(message), *extra]).strip()
        return cls(
            name=fields.get("name"),
            company=fields.get("company"),
            role=fields.get("role"),
            source=fields.get("source"),
            answers=found,
            message=message[:MAX_MESSAGE_CHARS],
        )

    def fields_text(self) -> str:
        """The form fields as ``key: value`` lines (the prompt's ``lead_fields``)."""
        lines = [
            f"{k}: {v}"
            for k, v in (
                ("name", self.name),
                ("company", self.company),
                ("role", self.role),
                ("source", self.source),
            )
            if v
        ]
        lines += [f"{slot}: {value}" for slot, value in self.answers.items()]
        return "\n".join(lines) or "(none)"


def rules_slots(
    script: Script,
    lead: EmailLead,
    enrichment: dict[str, Any],
    now: datetime,
    rules: RulesInterpreter,
) -> dict[str, SlotValue]:
    """The slots the rules read from the answers, the message and the enrichment."""
    session = Session.new(script, now)
    slots: dict[str, SlotValue] = {}
    for slot, text in lead.answers.items():
        asked = session.model_copy(update={"open_slot": slot})
        found = rules.interpret_now(script, asked, text, now).slots.get(slot)
        if found is not None:
            slots[slot] = found
    if lead.message:
        for slot, found in rules.interpret_now(script, session, lead.message, now).slots.items():
            slots.setdefault(slot, found)
    employees = enrichment.get("employees")
    if isinstance(employees, int):
        for q in script.questions:
            if q.slot in slots or q.kind is not AnswerKind.CHOICE or q.unit != "people":
                continue
            option = next((o for o in q.options if o.min is not None and o.holds(employees)), None)
            if option is not None:
                slots[q.slot] = SlotValue(
                    option.id, f"enrichment: {employees} employees", confidence=0.8
                )
    return slots


class FactExtractor(ModelReader):
    """Extracts slot facts with the configured chat model (closed schema, grounded facts)."""

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
        self, script: Script, lead: EmailLead, now: datetime
    ) -> tuple[dict[str, SlotValue], bool]:
        """Grounded facts and whether an injection was suspected. Raises on any failure."""
        model = extraction_model(script)
        runnable = structured(self._chat, model)
        message = normalize(lead.message, MAX_MESSAGE_CHARS)
        fields = lead.fields_text()
        messages = self.prompt.template.format_messages(
            today=now.date().isoformat(),
            questions=_questions(script),
            lead_fields=fields,
            message=message or "(no message)",
        )
        async with asyncio.timeout(self._deadline):
            out = await runnable.ainvoke(messages)
        if not isinstance(out, dict) or out.get("parsing_error") is not None:
            problem = out.get("parsing_error") if isinstance(out, dict) else out
            raise ValueError(f"unparsable extraction: {problem!r}"[:300])
        parsed = out.get("parsed")
        if parsed is None:
            raise ValueError("the model returned no extraction")
        extraction = parsed if isinstance(parsed, Extraction) else model.model_validate(parsed)
        haystack = f"{fields}\n{message}"
        injection = extraction.injection_suspected or looks_like_injection(
            fold(haystack), haystack
        )
        if injection:
            return {}, True
        return dict(ground(script, extraction, haystack).slots), False


def _questions(script: Script) -> str:
    lines = []
    for q in script.questions:
        line = f"- {q.slot} ({q.kind.value}): {q.text}"
        if q.options:
            line += "\n  option ids: " + "; ".join(f"{o.id} = {o.title}" for o in q.options)
        if q.unit:
            line += f"\n  unit: {q.unit}"
        lines.append(line)
    return "\n".join(lines)


class EmailQualifier:
    """Scores email leads against the ICP; ``extractor`` (LLM) is optional.

    ``script`` is the script whose slots are asked, or a function returning the one to use
    now (the service's current version: an admin may publish a new one while it runs)."""

    def __init__(
        self,
        icp: Icp,
        script: Script | Callable[[], Script],
        *,
        extractor: FactExtractor | None = None,
    ) -> None:
        self.icp = icp
        self._script = script
        self.extractor = extractor
        self.rules = RulesInterpreter()

    @property
    def script(self) -> Script:
        """The script qualifying a lead now."""
        return self._script if isinstance(self._script, Script) else self._script()

    async def qualify(
        self,
        fields: dict[str, Any],
        attribution: dict[str, str],
        enrichment: dict[str, Any],
        now: datetime,
        *,
        message: str = "",
        answers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The JSON stored on ``lead.qualification`` (a :class:`~dialogs.icp.Qualification`
        plus the slots, the source of the facts and the versions that decided).
        ``message`` and ``answers`` are what the lead wrote in its forms."""
        script = self.script  # one version for the whole lead
        lead = EmailLead.of(fields, attribution, script, message=message, answers=answers)
        slots = rules_slots(script, lead, enrichment, now, self.rules)
        source, prompt_version, notes = "rules", None, []
        if self.extractor is not None and (lead.answers or lead.message):
            try:
                facts, injection = await self.extractor.extract(script, lead, now)
            except Exception as exc:  # noqa: BLE001 - any model failure: keep the rules' reading
                log.warning("LLM qualification failed (%s); using rules", type(exc).__name__)
                notes.append(f"llm failed: {type(exc).__name__}")
            else:
                source, prompt_version = "llm", self.extractor.prompt.version
                if injection:
                    notes.append("injection suspected: rules reading kept")
                slots = {**slots, **facts}
        verdict = score(
            self.icp,
            slots,
            script_id=script.id,
            script_version=script.version,
            prompt_version=prompt_version,
        )
        if enrichment.get("disposable"):
            verdict = verdict.model_copy(
                update={
                    "tier": "cold",
                    "decision": "disqualified",
                    "reasons": [*verdict.reasons, "disposable email domain"],
                    "disqualifiers": [*verdict.disqualifiers, "disposable email domain"],
                }
            )
        return {
            **verdict.model_dump(mode="json"),
            "slots": {
                k: {"value": v.value, "evidence": v.evidence, "unknown": v.unknown}
                for k, v in slots.items()
            },
            "source": source,
            "notes": notes,
            "flow": "email_first_touch",
            "enrichment_version": enrichment.get("version"),
        }
