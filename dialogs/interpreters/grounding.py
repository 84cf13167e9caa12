"""Check a model's extraction against the message before anything uses it.

Enums already guarantee the model named real slots, options and FAQ entries. Here each fact
must also be *grounded*: its evidence is a verbatim quote of the (normalized) message, a
number appears in that quote, a value is within the question's bounds, an option belongs to
its own question. Whatever fails is dropped (and reported), never repaired or guessed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dialogs.interpretation import SlotValue
from dialogs.interpreters.schema import MAX_TEXT_CHARS, Extraction, Fact
from dialogs.parsing.emails import find_email
from dialogs.parsing.normalize import fold
from dialogs.parsing.numbers import find_numbers
from dialogs.script import AnswerKind

if TYPE_CHECKING:
    from dialogs.script import Question, Script

_WS = re.compile(r"\s+")
LLM_CONFIDENCE = 0.9


@dataclass
class Grounded:
    """The facts that survived, and why the others did not."""

    slots: dict[str, SlotValue] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def ground(script: Script, extraction: Extraction, message: str) -> Grounded:
    """Keep the facts in ``extraction`` that ``message`` (normalized) supports."""
    out = Grounded()
    haystack = _squash(message)
    for fact in extraction.slots:
        reason = _check(script, fact, haystack, message, out)
        if reason is not None:
            out.dropped.append(f"{fact.slot}: {reason}")
    return out


def _check(script: Script, fact: Fact, haystack: str, message: str, out: Grounded) -> str | None:
    """None when ``fact`` was accepted into ``out``; otherwise why it was dropped."""
    try:
        q = script.question(fact.slot)
    except KeyError:
        return "no such slot"
    if fact.slot in out.slots:
        return "duplicate slot"
    evidence = fact.evidence.strip()
    if not evidence:
        return "no evidence"
    if _squash(evidence) not in haystack:
        return f"evidence {evidence[:40]!r} is not in the message"
    quote = _verbatim(message, evidence)
    if fact.unknown:
        out.slots[q.slot] = SlotValue(None, quote, unknown=True, confidence=LLM_CONFIDENCE)
        return None
    value, reason = _value(q, fact, quote)
    if reason is not None:
        return reason
    out.slots[q.slot] = SlotValue(value, quote, confidence=LLM_CONFIDENCE)
    return None


def _value(q: Question, fact: Fact, quote: str) -> tuple[str | int | float | None, str | None]:
    kind = q.kind
    if kind in (AnswerKind.CHOICE, AnswerKind.TIMELINE):
        if fact.option_id is not None:
            if q.option(fact.option_id) is None:
                return None, f"option {fact.option_id!r} is not one of {q.slot}'s"
            return fact.option_id, None
        if kind is AnswerKind.CHOICE and q.allow_other:
            return quote[:MAX_TEXT_CHARS], None  # their own words, not the model's summary
        return None, "no option"
    if kind is AnswerKind.NUMBER:
        n = fact.number
        if n is None or not math.isfinite(n):
            return None, "no number"
        if (q.min is not None and n < q.min) or (q.max is not None and n > q.max):
            return None, f"{n:g} is outside {q.min}..{q.max}"
        if not _number_in(quote, n):
            return None, f"{n:g} does not appear in {quote[:40]!r}"
        return (int(n) if n.is_integer() else n), None
    if kind is AnswerKind.EMAIL:
        found = find_email(quote)
        if found is None:
            return None, "no email address in the evidence"
        return found.address, None
    return quote[:MAX_TEXT_CHARS], None  # free text: the prospect's words


def _number_in(quote: str, n: float) -> bool:
    """Whether ``n`` is a number the quote states (or the midpoint of a range it states)."""
    for m in find_numbers(quote, "es") + find_numbers(quote, "en"):
        for v in (m.value, m.low, m.high):
            if v is not None and math.isclose(v, n, rel_tol=0.01, abs_tol=0.5):
                return True
    return False


def _squash(s: str) -> str:
    return _WS.sub(" ", fold(s)).strip()


def _verbatim(message: str, evidence: str) -> str:
    """The message's own spelling of the evidence (the model may have changed the case)."""
    i = fold(message).find(fold(evidence))
    if i >= 0 and len(fold(message)) == len(message):
        return message[i : i + len(evidence)]
    return evidence
