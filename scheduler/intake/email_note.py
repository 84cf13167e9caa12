"""A structured note from one email reply: its shape, and the extractive reading (pure).

Every inbound email reply becomes a note with a summary, the next step, the budget, the
timeline, objections and the sentiment (:class:`EmailNote`). The model fills it when one is
configured (:mod:`scheduler.intake.email_note_llm`); this module is the reading without one,
and the fallback whenever the model fails: the first sentences of the reply as the summary,
plus what the rules interpreter finds in it (budget, timeline and every other slot of the
script, each with the words it came from) and the objections a few plain phrases give away.
It never guesses what is not written: no next step and no sentiment ("unknown") here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from dialogs.interpretation import SlotValue
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.parsing.normalize import normalize
from dialogs.script import AnswerKind, Script
from scheduler.intake.email_qualify import EmailLead, rules_slots

Sentiment = Literal["positive", "neutral", "negative", "mixed"]
ObjectionKind = Literal["price", "timing", "authority", "need", "competitor", "other"]
SENTIMENTS: tuple[str, ...] = ("positive", "neutral", "negative", "mixed")
OBJECTION_KINDS: tuple[str, ...] = ("price", "timing", "authority", "need", "competitor", "other")

MAX_EMAIL_CHARS = 4000
"""What of a reply is read (the model's input, the rules' input): replies are short."""
MAX_SUMMARY_CHARS = 400
MAX_NEXT_STEP_CHARS = 200
MAX_VALUE_CHARS = 80
MAX_EVIDENCE_CHARS = 300
MAX_OBJECTIONS = 5
SUMMARY_SENTENCES = 2

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Salutations and sign-offs carry nothing a rep needs in a summary.
_SALUTATION = re.compile(
    r"^(hi|hello|hey|dear|good (morning|afternoon|evening))\b[^.!?\n]{0,40}[,!:]?\s*$", re.I
)
_SIGN_OFF = re.compile(
    r"^(thanks|thank you|many thanks|cheers|best|best regards|regards|kind regards|"
    r"warm regards|all the best|sincerely)\b[^.!?\n]{0,20}[,!.]?\s*$",
    re.I,
)
# Plain phrases that state an objection; the sentence holding one is its evidence.
_OBJECTIONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "price",
        re.compile(
            r"\b(too (expensive|pricey|much)|over (our|the|my) budget|can'?t afford|"
            r"out of (our|my) (price range|budget)|cheaper|lower (the )?price)\b",
            re.I,
        ),
    ),
    (
        "timing",
        re.compile(
            r"\b(not (right )?now|not a priority|bad time|not the right time|"
            r"revisit (this )?(later|next)|on hold|circle back (later|next))\b",
            re.I,
        ),
    ),
    (
        "authority",
        re.compile(
            r"\b(check with (my|our) (boss|manager|team|partner|cfo|ceo|cto|board)|"
            r"need (approval|sign[- ]?off)|not my (call|decision)|run it by)\b",
            re.I,
        ),
    ),
    (
        "competitor",
        re.compile(
            r"\b(already (use|using|work with|working with|have a|signed with)|"
            r"another (vendor|agency|provider|supplier)|went with|"
            r"going with (another|a different))\b",
            re.I,
        ),
    ),
    (
        "need",
        re.compile(r"\b(don'?t (really )?need|no need for|not interested|no longer need)\b", re.I),
    ),
)


@dataclass(frozen=True, slots=True)
class Quoted:
    """A fact in a few words (``text``) and the reply's own words it rests on."""

    text: str
    evidence: str


@dataclass(frozen=True, slots=True)
class Objection:
    """An objection the prospect raised: its kind and their words."""

    kind: str
    evidence: str


@dataclass(frozen=True, slots=True)
class EmailNote:
    """The structured note of one reply. ``sentiment`` None: not read (the extractive path).
    ``facts``: every slot the rules interpreter filled (``{slot: {value, evidence}}``).
    ``source`` says who read it ("llm" or "rules") and ``prompt_version`` which prompt."""

    summary: str
    next_step: str | None = None
    budget: Quoted | None = None
    timeline: Quoted | None = None
    objections: tuple[Objection, ...] = ()
    sentiment: str | None = None
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "rules"
    prompt_version: str | None = None
    injection_suspected: bool = False
    notes: tuple[str, ...] = ()

    def data(self) -> dict[str, Any]:
        """The JSON form stored in the note's ``data`` (and sent with ``lead.note_added``)."""
        return {
            "summary": self.summary,
            "next_step": self.next_step,
            "budget": _quoted(self.budget),
            "timeline": _quoted(self.timeline),
            "objections": [{"kind": o.kind, "evidence": o.evidence} for o in self.objections],
            "sentiment": self.sentiment,
            "facts": self.facts,
            "source": self.source,
            "prompt_version": self.prompt_version,
            "injection_suspected": self.injection_suspected,
            "notes": list(self.notes),
        }


def _quoted(value: Quoted | None) -> dict[str, str] | None:
    return None if value is None else {"text": value.text, "evidence": value.evidence}


def reply_text(body: str) -> str:
    """The reply as the readers see it: normalized (invisibles and tags gone, one space),
    capped at :data:`MAX_EMAIL_CHARS`; line breaks kept, so sentences and sign-offs show."""
    lines = (normalize(line, MAX_EMAIL_CHARS) for line in body.splitlines())
    return "\n".join(line for line in lines if line)[:MAX_EMAIL_CHARS]


def first_sentences(text: str, count: int = SUMMARY_SENTENCES) -> str:
    """The first ``count`` sentences of ``text``, salutations and sign-offs left out,
    at most :data:`MAX_SUMMARY_CHARS` (cut at a word)."""
    lines = [
        line
        for line in text.splitlines()
        if not (_SALUTATION.match(line) or _SIGN_OFF.match(line))
    ]
    sentences = [s for s in _SENTENCE_END.split(" ".join(lines)) if s.strip()]
    summary = " ".join(sentences[:count]).strip()
    if len(summary) > MAX_SUMMARY_CHARS:
        summary = summary[: MAX_SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return summary


def find_objections(text: str) -> tuple[Objection, ...]:
    """The objections plain phrases state, one per kind, each with its sentence."""
    sentences = _SENTENCE_END.split(" ".join(text.splitlines()))
    found: list[Objection] = []
    for kind, pattern in _OBJECTIONS:
        sentence = next((s for s in sentences if pattern.search(s)), None)
        if sentence is not None:
            found.append(Objection(kind, sentence.strip()[:MAX_EVIDENCE_CHARS]))
    return tuple(found[:MAX_OBJECTIONS])


def rules_facts(
    script: Script, text: str, now: datetime, rules: RulesInterpreter
) -> dict[str, SlotValue]:
    """What the rules interpreter reads in the reply (as in the email qualifier)."""
    return rules_slots(script, EmailLead(message=text[:MAX_EMAIL_CHARS]), {}, now, rules)


def fact_text(script: Script, slot: str, value: SlotValue) -> str:
    """A slot value as people read it: an option's title, a number with separators."""
    if value.unknown:
        return "not sure"
    raw = value.value
    try:
        question = script.question(slot)
    except KeyError:
        return str(raw)
    if question.kind in (AnswerKind.CHOICE, AnswerKind.TIMELINE) and isinstance(raw, str):
        option = question.option(raw)
        return option.title if option is not None else raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return f"{raw:,.0f}" if float(raw).is_integer() else f"{raw:,.2f}"
    return str(raw)


def facts_json(script: Script, facts: dict[str, SlotValue]) -> dict[str, dict[str, Any]]:
    """The rules' facts as stored: ``{slot: {value, text, evidence}}``."""
    return {
        slot: {"value": v.value, "text": fact_text(script, slot, v), "evidence": v.evidence}
        for slot, v in facts.items()
    }


def extractive_note(
    script: Script,
    text: str,
    now: datetime,
    rules: RulesInterpreter,
    *,
    notes: tuple[str, ...] = (),
    injection_suspected: bool = False,
) -> EmailNote:
    """The note without a model: first sentences, the rules' facts, stated objections."""
    facts = rules_facts(script, text, now, rules)

    def quoted(slot: str) -> Quoted | None:
        value = facts.get(slot)
        if value is None:
            return None
        return Quoted(fact_text(script, slot, value)[:MAX_VALUE_CHARS], value.evidence)

    return EmailNote(
        summary=first_sentences(text),
        budget=quoted("budget"),
        timeline=quoted("timeline"),
        objections=find_objections(text),
        facts=facts_json(script, facts),
        source="rules",
        injection_suspected=injection_suspected,
        notes=notes,
    )
