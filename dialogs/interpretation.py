"""What an interpreter understood from one prospect message.

This is the contract between the interpreters (rules, LLM) and the dialog engine: interpreters
turn text into an :class:`Interpretation`; the engine decides what to do with it. Nothing here
does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from datetime import datetime

    from dialogs.script import Script
    from dialogs.session import Session

SlotScalar = str | int | float


class Intent(StrEnum):
    """What the prospect is doing with this message, besides any answers it carries."""

    ANSWER = "answer"  # gives (or tries to give) slot values
    QUESTION = "question"  # asks something off-script ("price?", "who is this?")
    STOP = "stop"  # stop / unsubscribe / opt out, in any common form
    HUMAN = "human"  # asks for a person
    GREETING = "greeting"  # "hi", "hello" with nothing else
    UNKNOWN = "unknown"  # nothing usable


@dataclass(frozen=True, slots=True)
class SlotValue:
    """One slot filled from a message.

    ``value`` is normalized: the option id for a choice, a number for a number, a timeline
    bucket id for a timeline, the lower-cased address for an email, the trimmed text for free
    text. ``unknown`` is True when the prospect said they do not know ("idk", "not sure"):
    that is an answer, and the slot counts as filled. ``evidence`` is the verbatim part of the
    message the value came from.
    """

    value: SlotScalar | None
    evidence: str
    unknown: bool = False
    confidence: float = 1.0


@dataclass(frozen=True, slots=True)
class Phrasing:
    """The LLM's wording for the question about ``slot``, already through the output filter.

    Wording only: the engine asks it only when ``slot`` is the question it asks next anyway;
    the question's buttons or list stay the script's.
    """

    slot: str
    text: str


@dataclass(frozen=True, slots=True)
class Interpretation:
    """Everything understood from one prospect message."""

    intent: Intent
    slots: Mapping[str, SlotValue] = field(default_factory=dict)
    faq_id: str | None = None  # the script FAQ entry the message asks about, if any
    question: str | None = None  # the off-script question, verbatim, when intent is QUESTION
    injection_suspected: bool = False
    source: Literal["rules", "llm"] = "rules"
    prompt_version: str | None = None  # set by the LLM interpreter
    phrasing: Phrasing | None = None  # the LLM's wording of the next question, if it passed


class Interpreter(Protocol):
    """Turns a prospect's message into an :class:`Interpretation` for the open dialog."""

    async def interpret(
        self, script: Script, session: Session, text: str, now: datetime
    ) -> Interpretation:
        """Interpret ``text`` in the context of ``session`` (which question is open, what is
        already filled) at time ``now`` ("next month" depends on it). Never raises for bad
        model output: falls back instead."""
        ...
