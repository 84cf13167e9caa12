"""The LLM interpreter: a model extracts facts into a closed schema; code checks them.

The chat model comes from :mod:`dialogs.llm_model` (LangChain's ``init_chat_model``: any
provider, or an OpenAI-compatible server), ``temperature=0``, structured output with
``json_schema`` where the provider has it. The model sees the conversation so far (bounded,
:mod:`.context`) and may word the next question; the engine still picks the question, and a
wording that fails the output filter is dropped for the script's text. Every failure — HTTP
errors and timeouts, truncated or non-JSON output, schema violations, ``finish_reason:
"length"``, a refusal — falls back to the rules interpreter with the reason logged; a value
is never invented. Facts are grounded (:mod:`.grounding`), merged over the rules' own
reading, and when the message looks like an injection attempt only the rules' reading is
used (and no wording). The prospect's text goes only into the human message, normalized and
capped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import Runnable

from dialogs.interpretation import Intent, Interpretation
from dialogs.interpreters.context import checked_phrasing, history_text
from dialogs.interpreters.grounding import ground
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.interpreters.schema import Extraction, NextQuestion, extraction_model
from dialogs.llm_model import chat_model, structured
from dialogs.parsing.intents import looks_like_injection
from dialogs.parsing.normalize import fold, normalize
from dialogs.prompts import LoadedPrompt, PromptError, load_prompt
from dialogs.script import AnswerKind

if TYPE_CHECKING:
    from datetime import datetime

    from dialogs.script import Script
    from dialogs.session import Session

logger = logging.getLogger(__name__)

LLM_MAX_CHARS = 2000  # what the model sees of one message; a real answer is far shorter


@dataclass(frozen=True, slots=True)
class _PerScript:
    script: Script
    model: type[Extraction]
    runnable: Runnable[Any, Any]
    questions: str
    faq: str


class LLMInterpreter:
    """Interpret with a model; fall back to ``fallback`` (the rules) on any failure."""

    def __init__(
        self,
        model: str,
        base_url: str | None,
        api_key: str,
        prompts_dir: Path | str,
        *,
        timeout: float = 8.0,
        max_retries: int = 1,
        fallback: RulesInterpreter | None = None,
        max_chars: int = LLM_MAX_CHARS,
    ) -> None:
        self._chat = chat_model(
            model,
            api_key=api_key,
            base_url=base_url,
            temperature=0,
            timeout=timeout,
            max_retries=max_retries,
        )
        # One deadline for the whole call, retries and back-off included.
        self._deadline = timeout * (max_retries + 1) + 1.0
        self._prompts_dir = Path(prompts_dir)
        self._prompts: dict[str, LoadedPrompt] = {}
        self._per_script: dict[tuple[str, str], _PerScript] = {}
        self._fallback = fallback or RulesInterpreter()
        self._max_chars = max_chars

    def prompt(self, name: str) -> LoadedPrompt:
        """The loaded prompt ``name`` (cached). Call at start-up to fail fast on a bad file."""
        loaded = self._prompts.get(name)
        if loaded is None:
            loaded = self._prompts[name] = load_prompt(self._prompts_dir, name)
        return loaded

    async def interpret(
        self, script: Script, session: Session, text: str, now: datetime
    ) -> Interpretation:
        """See :class:`~dialogs.interpretation.Interpreter`. Never raises for model trouble."""
        rules = self._fallback.interpret_now(script, session, text, now)
        if rules.intent is Intent.STOP:
            return rules  # an opt-out is honoured without asking anyone
        message = normalize(text, self._max_chars)
        if not message:
            return rules
        try:
            prompt = self.prompt(script.prompt)
        except PromptError as exc:
            logger.error("LLM interpreter: %s; using rules", exc)
            return rules
        per = self._for(script)
        variables = {
            "today": now.date().isoformat(),
            "language": script.language,
            "questions": per.questions,
            "faq": per.faq,
            "filled": _filled(script, session),
            "open_question": _open_question(script, session),
            "history": history_text(session),
            "message": message,
        }
        try:
            messages = prompt.template.format_messages(**variables)
            async with asyncio.timeout(self._deadline):
                out = await per.runnable.ainvoke(messages)
            extraction = _parsed(out, per.model)
        except Exception as exc:  # noqa: BLE001 - any model failure means: use the rules
            logger.warning(
                "LLM interpreter failed (%s: %.300s); using rules", type(exc).__name__, exc
            )
            return rules
        return self._merge(
            script, rules, extraction, message=message, prompt_version=prompt.version, raw=text
        )

    def _merge(
        self,
        script: Script,
        rules: Interpretation,
        extraction: Extraction,
        *,
        message: str,
        prompt_version: str,
        raw: str,
    ) -> Interpretation:
        injection = (
            extraction.injection_suspected
            or rules.injection_suspected
            or looks_like_injection(fold(message), raw)
        )
        if injection:
            # Whatever the model says now may be what the message told it to say.
            logger.warning("LLM interpreter: injection suspected; keeping the rules' reading")
            return Interpretation(
                rules.intent,
                rules.slots,
                faq_id=rules.faq_id,
                question=rules.question,
                injection_suspected=True,
                source="llm",
                prompt_version=prompt_version,
            )
        grounded = ground(script, extraction, message)
        if grounded.dropped:
            logger.info("LLM interpreter dropped facts: %s", "; ".join(grounded.dropped))
        intent = Intent(extraction.intent)
        if intent is Intent.STOP:
            return Interpretation(Intent.STOP, source="llm", prompt_version=prompt_version)
        slots = {**rules.slots, **grounded.slots}  # the model wins where both read a slot
        if intent in (Intent.UNKNOWN, Intent.GREETING) and slots:
            intent = Intent.ANSWER
        proposed = getattr(extraction, "next_question", None)
        return Interpretation(
            intent,
            slots,
            faq_id=extraction.faq_id,
            question=message if intent is Intent.QUESTION else None,
            source="llm",
            prompt_version=prompt_version,
            phrasing=checked_phrasing(proposed if isinstance(proposed, NextQuestion) else None),
        )

    def _for(self, script: Script) -> _PerScript:
        key = (script.id, script.version)
        per = self._per_script.get(key)
        if per is None or per.script is not script:
            model = extraction_model(script, phrasing=True)
            runnable = structured(self._chat, model)
            per = _PerScript(script, model, runnable, _questions(script), _faq(script))
            self._per_script[key] = per
        return per


def _parsed(out: Any, model: type[Extraction]) -> Extraction:
    """The validated extraction from ``include_raw`` output; raises if there is none."""
    if not isinstance(out, dict):
        raise TypeError(f"unexpected output {type(out).__name__}")
    if out.get("parsing_error") is not None:
        raise out["parsing_error"]
    parsed = out.get("parsed")
    if parsed is None:
        raise ValueError("the model returned no parsable extraction")
    if isinstance(parsed, model):
        return parsed
    # A dict (lenient parser) or another model: validate it ourselves (raises if invalid).
    data = parsed.model_dump() if isinstance(parsed, Extraction) else parsed
    return model.model_validate(data)


def _questions(script: Script) -> str:
    lines = []
    for q in script.questions:
        line = f"- {q.slot} ({q.kind.value}): {q.text}"
        if q.options:
            opts = "; ".join(
                f"{o.id} = {o.title}"
                + (
                    f" (within {o.within_days} days)"
                    if q.kind is AnswerKind.TIMELINE and o.within_days is not None
                    else ""
                )
                for o in q.options
            )
            line += f"\n  option ids: {opts}"
            if q.allow_other:
                line += "\n  (or their own words as text when no option fits)"
        if q.unit:
            line += f"\n  unit: {q.unit}"
        lines.append(line)
    return "\n".join(lines)


def _faq(script: Script) -> str:
    return "\n".join(f"- {f.id}: {', '.join(f.match)}" for f in script.faq) or "(none)"


def _filled(script: Script, session: Session) -> str:
    """What is answered, without repeating the prospect's own words into the prompt."""
    parts = []
    for slot, record in session.slots.items():
        if record.unknown:
            parts.append(f"{slot}=(does not know)")
            continue
        try:
            kind = script.question(slot).kind
        except KeyError:
            continue
        shown = (
            record.value
            if kind in (AnswerKind.CHOICE, AnswerKind.TIMELINE, AnswerKind.NUMBER)
            else "(answered)"
        )
        if kind is AnswerKind.CHOICE and script.question(slot).option(str(shown)) is None:
            shown = "(answered in their words)"
        parts.append(f"{slot}={shown}")
    return ", ".join(parts) or "(nothing yet)"


def _open_question(script: Script, session: Session) -> str:
    if session.open_slot is None:
        return "(none yet: this is their first message)"
    try:
        q = script.question(session.open_slot)
    except KeyError:
        return "(none)"
    return f"{q.slot}: {q.text}"
