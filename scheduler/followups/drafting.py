"""Drafting follow-ups: a Jinja2 template drafter and an LLM drafter that falls back to it.

Both return a :class:`Draft` whose ``meta`` (template or prompt id and version, model) is
stored on the touch beside the text. Every draft passes :mod:`scheduler.followups.draft_filter`: an
LLM draft that breaks a rule (a link we did not give it, a price, too long) is replaced by
the template's; a template's is repaired. Templates run in Jinja2's sandbox with
``StrictUndefined`` (a typo fails at load time, see
:func:`scheduler.followups.templates.template_problem`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jinja2 import Template

from scheduler.followups import draft_filter
from scheduler.followups.cadence import Cadence, Step
from scheduler.followups.draft_filter import DraftPolicy
from scheduler.followups.templates import environment, template_variables

log = logging.getLogger("leadbot.drafting")


@dataclass(frozen=True, slots=True)
class DraftContext:
    """Everything a drafter may use. ``history`` is the last messages, oldest first, as
    ``(direction, text)`` with direction ``"in"`` (from the lead) or ``"out"``."""

    sequence: str
    step: Step
    channel: str
    lead: dict[str, Any]
    answers: dict[str, Any]
    links: dict[str, str]
    policy: DraftPolicy
    history: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = ()  # the lead's newest notes, newest first


@dataclass(frozen=True, slots=True)
class Draft:
    """A message ready to store on the touch."""

    text: str
    subject: str | None
    meta: dict[str, Any] = field(default_factory=dict)


class Drafter(Protocol):
    """Writes one follow-up. ``needs_history``: load the last messages into the context."""

    needs_history: bool

    async def draft(self, context: DraftContext) -> Draft:
        """Return the draft; never raise for an LLM problem (fall back instead)."""
        ...


class TemplateDrafter:
    """Renders the step's Jinja2 template (no LLM). Deterministic and fast."""

    needs_history = False

    def __init__(self, cadence: Cadence) -> None:
        self.cadence = cadence
        self.env = environment(cadence.templates_dir)
        self._subjects: dict[str, Template] = {}

    def _subject(self, source: str) -> Template:
        # Compiling a template costs far more than rendering it: once per subject line.
        if source not in self._subjects:
            self._subjects[source] = self.env.from_string(source)
        return self._subjects[source]

    async def draft(self, context: DraftContext) -> Draft:
        """Render the template and repair what the filter objects to."""
        return self.render(context)

    def render(self, context: DraftContext) -> Draft:
        """Synchronous rendering (no I/O besides the cached template)."""
        step = context.step
        variables = template_variables(
            self.cadence.sender.template_values(step.channel),
            context.lead,
            context.answers,
            context.links,
            {"id": step.id, "purpose": step.purpose},
        )
        text = self.env.get_template(context.step.template).render(variables).strip()
        text, notes = draft_filter.clean(text, context.policy)
        subject = None
        if context.channel == "email":
            source = context.step.subject or self.cadence.sender.default_subject
            subject = self._subject(source).render(variables).strip()[:200]
        meta: dict[str, Any] = {
            "drafter": "template",
            "template": context.step.template,
            "cadence_version": self.cadence.version,
        }
        if notes:
            meta["filtered"] = notes
        return Draft(text=text, subject=subject, meta=meta)


class LLMDrafter:
    """Drafts with the chat model of ``LEADBOT_LLM_MODEL`` (:mod:`dialogs.llm_model`) using the
    ``draft_followup`` prompt; any failure or filter violation falls back to the template."""

    needs_history = True

    def __init__(
        self,
        cadence: Cadence,
        *,
        model: str,
        api_key: str,
        base_url: str | None,
        prompts_dir: Path,
        prompt_name: str = "draft_followup",
        timeout: float = 20.0,
    ) -> None:
        from dialogs.llm_model import chat_model
        from dialogs.prompts import load_prompt

        self.fallback = TemplateDrafter(cadence)
        self.cadence = cadence
        self.prompt = load_prompt(prompts_dir, prompt_name)
        self.model = model
        self.timeout = timeout
        self.llm = chat_model(
            model,
            api_key=api_key,
            base_url=base_url or None,
            temperature=0.4,
            timeout=timeout,
            max_retries=1,
        )

    async def draft(self, context: DraftContext) -> Draft:
        """The model's draft if it passes the filter, else the template's (with the reason)."""
        try:
            messages = self.prompt.template.format_messages(**self._prompt_values(context))
            reply = await asyncio.wait_for(self.llm.ainvoke(messages), self.timeout + 5)
            text = reply.content if isinstance(reply.content, str) else ""
            text = text.strip()
        except Exception as exc:  # any LLM failure: the lead still gets a good message
            log.warning("LLM draft failed, using the template: %s", exc)
            return self._fallback(context, f"llm error: {exc.__class__.__name__}")
        problems = draft_filter.problems(text, context.policy)
        if problems:
            return self._fallback(context, "; ".join(problems))
        template = self.fallback.render(context)  # only for the subject line
        meta = {
            "drafter": "llm",
            "prompt": self.prompt.name,
            "prompt_version": self.prompt.version,
            "model": self.model,
        }
        return Draft(text=text, subject=template.subject, meta=meta)

    def _fallback(self, context: DraftContext, reason: str) -> Draft:
        draft = self.fallback.render(context)
        meta = {**draft.meta, "fallback_reason": reason[:500]}
        meta["prompt_version"] = self.prompt.version
        return Draft(text=draft.text, subject=draft.subject, meta=meta)

    def _prompt_values(self, context: DraftContext) -> dict[str, str]:
        lead = context.lead
        facts = [f"{k}: {lead[k]}" for k in ("name", "company", "role") if lead.get(k)]
        facts += [f"answer {k}: {v}" for k, v in context.answers.items() if v is not None]
        if lead.get("tier"):
            facts.append(f"qualification tier: {lead['tier']}")
        # Notes may quote the lead's email: capped, and only ever in the human message.
        facts += [f"note: {' '.join(n.split())[:300]}" for n in context.notes]
        # The lead's words are data: length-capped and kept inside the human message only.
        lines = [
            f"{'lead' if d == 'in' else 'us'}: {t[:500].replace('</lead_messages>', '')}"
            for d, t in context.history
        ]
        return {
            "company": self.cadence.sender.company or "our company",
            "rep_name": self.cadence.sender.name or "the sales team",
            "step": f"{context.step.id} ({context.step.purpose.replace('_', ' ')})",
            "stage": str(lead.get("stage", "")),
            "facts": "\n".join(facts) or "(nothing yet)",
            "allowed_links": ", ".join(sorted(set(context.links.values()))) or "(none)",
            "last_messages": "\n".join(lines) or "(no messages yet)",
        }
