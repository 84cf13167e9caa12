"""The dialog script: what the bot asks, how answers map to options, and how it ends.

A script is data (``dialogs/scripts/*.yaml``) that admins tune; this module is its typed model.
Structural checks (types, required fields) are pydantic's; semantic checks (duplicate slots,
WhatsApp size limits, dangling outcomes, unknown placeholders) are :meth:`Script.issues`, which
returns every problem with its location so the loader can point at the offending YAML line.
Building a :class:`Script` directly runs the same checks and raises on the first batch.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

# WhatsApp Cloud API limits for interactive messages.
MAX_BUTTONS = 3
MAX_LIST_ROWS = 10
BUTTON_TITLE_MAX = 20
LIST_ROW_TITLE_MAX = 24
LIST_ROW_DESCRIPTION_MAX = 72
INTERACTIVE_BODY_MAX = 1024
TEXT_BODY_MAX = 4096

# The only names an outcome message may use. Prospect text is never templated.
OUTCOME_PLACEHOLDERS = frozenset({"calendly_url", "resource_url", "name"})
REQUIRED_OUTCOMES = ("qualified", "disqualified", "handoff")

# Context flag the loader passes so it can collect located issues instead of one exception.
DEFER_CHECKS = "defer_checks"

_ID = r"^[A-Za-z0-9_.+\-]+$"  # no ':' because button ids are "<slot>:<option_id>"


class AnswerKind(StrEnum):
    """How a question's answer is understood."""

    CHOICE = "choice"
    NUMBER = "number"
    TIMELINE = "timeline"
    EMAIL = "email"
    FREE_TEXT = "free_text"


class _Model(BaseModel):
    # Typos in admin-edited YAML must fail loudly rather than be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Option(_Model):
    """One possible answer to a question.

    ``min``/``max`` give a numeric range: "about 200 people" lands in the option whose range
    holds 200. ``within_days`` makes the option a timeline bucket: the soonest bucket whose
    ``within_days`` is at least the parsed horizon wins; ``None`` means "later / open".
    """

    id: str = Field(pattern=_ID)
    title: str = Field(min_length=1)
    description: str | None = None
    synonyms: list[str] = []
    min: float | None = None
    max: float | None = None
    within_days: int | None = Field(default=None, ge=0)

    def holds(self, number: float) -> bool:
        """Whether ``number`` falls in this option's range (open ends are unbounded)."""
        if self.min is None and self.max is None:
            return False
        return (self.min is None or number >= self.min) and (
            self.max is None or number <= self.max
        )


class Question(_Model):
    """One qualifying question, filling one slot."""

    slot: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    text: str = Field(min_length=1)
    kind: AnswerKind
    options: list[Option] = []
    unit: str | None = None  # for numbers: "people", "currency", ...
    min: float | None = None  # accepted range for numbers
    max: float | None = None
    reask: str | None = None  # None: the script's reask_prefix + the question text
    # A question is put at most twice (asked, then re-asked once): asking a third time
    # loses the prospect. Past that the answer is kept as missing, never held against them.
    max_reasks: int = Field(default=1, ge=0, le=1)
    required: bool = True
    # For choice questions: free text that matches no option is still an answer (the trimmed
    # text becomes the value) instead of triggering a re-ask.
    allow_other: bool = False

    def render_as(self) -> Literal["buttons", "list", "text"]:
        """How WhatsApp shows the question: up to 3 buttons, a list of 4–10 rows, else text."""
        if 1 <= len(self.options) <= MAX_BUTTONS:
            return "buttons"
        if MAX_BUTTONS < len(self.options) <= MAX_LIST_ROWS:
            return "list"
        return "text"

    def option(self, option_id: str) -> Option | None:
        """The option with ``option_id``, or None."""
        return next((o for o in self.options if o.id == option_id), None)


class FaqEntry(_Model):
    """A short answer to an off-script question the prospect may ask."""

    id: str = Field(pattern=_ID)
    match: list[str] = Field(min_length=1)  # keywords / phrases that trigger it
    answer: str = Field(min_length=1)


class ScriptOutcome(_Model):
    """How a conversation ends. ``message`` may use ``{calendly_url}``, ``{resource_url}``
    and ``{name}``; they are filled from a fixed safe dict, never from prospect text.
    ``message_without_url`` is said instead when ``message`` uses ``{resource_url}`` and no
    resource URL is configured (neither the script's nor ``LEADBOT_RESOURCE_URL``)."""

    kind: Literal["qualified", "disqualified", "handoff"]
    message: str = Field(min_length=1)
    message_without_url: str | None = Field(default=None, min_length=1)
    url: str | None = None


class Variant(_Model):
    """One arm of an experiment: its share of new conversations and the texts it changes.

    ``overrides`` maps a dotted path to the text said instead: ``greeting``,
    ``questions.<slot>.text``, ``questions.<slot>.options.<id>.title``,
    ``outcomes.<kind>.message``, ``faq.<id>.answer``... (see :mod:`dialogs.experiments`).
    """

    weight: int = Field(default=1, ge=0, le=1_000_000)
    overrides: dict[str, str] = {}


class Experiment(_Model):
    """An A/B test of a script's texts. ``id`` seeds the assignment hash: a new id starts a
    new experiment (everyone re-drawn); its results are reported apart."""

    id: str = Field(pattern=_ID, max_length=100)
    variants: dict[str, Variant]


@dataclass(frozen=True, slots=True)
class ScriptIssue:
    """A semantic problem in a script, located by its path in the document."""

    loc: tuple[str | int, ...]
    message: str


class Script(_Model):
    """A dialog script: greeting, 3–4 questions, FAQ, outcomes and the bot's stock replies."""

    id: str = Field(pattern=_ID)
    version: str = Field(min_length=1)
    language: str = "en"
    # Scripts of one family are translations of each other (same slots and option ids): a
    # conversation moves to the family's script in the language the prospect writes in.
    family: str | None = Field(default=None, pattern=_ID)
    greeting: str = Field(min_length=1)
    questions: list[Question]
    outcomes: dict[str, ScriptOutcome]
    faq: list[FaqEntry] = []
    prompt: str = Field(default="interpret", pattern=_ID)  # prompts/<prompt>.yaml
    resource_url: str | None = None
    unsupported_media: str = "Sorry, I can only read text messages here."
    opted_out: str = "Done — you won't hear from us again. Take care!"
    handoff_ack: str = "Sure — a colleague will pick this up here shortly."
    off_script_fallback: str = "Good question — a colleague will follow up on that."
    reask_prefix: str = "Sorry, I didn't quite get that."
    finished: str = "Thanks for your message! We have everything we need for now."
    # After the decision, a question no FAQ entry answers goes to the rep; the prospect is told.
    question_forwarded: str = (
        "Good question — I've passed it to a colleague, who will answer you here."
    )
    nudge: str = "Still there? No rush —"  # prefixed to the open question on a timeout
    # Follow-up cadence to start when the prospect stays quiet after the nudge (None: none).
    quiet_sequence: str | None = None
    # After this many off-script questions no FAQ entry answers, hand off to a person.
    max_unanswered: int = Field(default=3, ge=1)
    # A lead the answers neither qualify nor rule out (dialogs.icp "undecided"): book the
    # call ("book") or bring in a person ("handoff"). Never deflected for what is missing.
    when_undecided: Literal["book", "handoff"] = "book"
    cta_title: str = Field(default="Book a call", max_length=BUTTON_TITLE_MAX)
    list_button: str = Field(default="Choose", max_length=BUTTON_TITLE_MAX)
    # Variants new conversations are split between (None: no experiment running); checked
    # by the loader with dialogs.experiments.experiment_issues (each variant as a script).
    experiment: Experiment | None = None

    @model_validator(mode="before")
    @classmethod
    def _outcome_kind_from_key(cls, data: Any) -> Any:
        """Let YAML omit ``kind`` under ``outcomes.<key>``: the key says it already."""
        if isinstance(data, dict) and isinstance(data.get("outcomes"), dict):
            outcomes = {
                key: ({"kind": key, **value} if isinstance(value, dict) else value)
                for key, value in data["outcomes"].items()
            }
            data = {**data, "outcomes": outcomes}
        return data

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Script:
        if info.context and info.context.get(DEFER_CHECKS):
            return self
        issues = self.issues()
        if issues:
            raise ValueError("; ".join(f"{_dotted(i.loc)}: {i.message}" for i in issues))
        return self

    def question(self, slot: str) -> Question:
        """The question that fills ``slot``; KeyError if there is none."""
        for q in self.questions:
            if q.slot == slot:
                return q
        raise KeyError(slot)

    @property
    def slots(self) -> tuple[str, ...]:
        """Slot names in the order they are asked."""
        return tuple(q.slot for q in self.questions)

    def reask_text(self, question: Question) -> str:
        """What to say when an answer to ``question`` was not understood."""
        return question.reask or f"{self.reask_prefix} {question.text}"

    def faq_entry(self, faq_id: str | None) -> FaqEntry | None:
        """The FAQ entry with ``faq_id``, or None."""
        return next((f for f in self.faq if f.id == faq_id), None)

    def issues(self) -> list[ScriptIssue]:
        """Every semantic problem, in document order; empty when the script is sound."""
        out: list[ScriptIssue] = []
        if not 3 <= len(self.questions) <= 4:
            out.append(
                ScriptIssue(("questions",), f"needs 3-4 questions, has {len(self.questions)}")
            )
        seen_slots: set[str] = set()
        for i, q in enumerate(self.questions):
            if q.slot in seen_slots:
                out.append(ScriptIssue(("questions", i, "slot"), f"duplicate slot {q.slot!r}"))
            seen_slots.add(q.slot)
            out.extend(_question_issues(i, q))
        for key in REQUIRED_OUTCOMES:
            if key not in self.outcomes:
                out.append(ScriptIssue(("outcomes",), f"missing outcome {key!r}"))
        for key, outcome in self.outcomes.items():
            if key not in REQUIRED_OUTCOMES:
                out.append(ScriptIssue(("outcomes", key), f"unknown outcome {key!r}"))
            elif outcome.kind != key:
                out.append(
                    ScriptIssue(("outcomes", key, "kind"), f"kind {outcome.kind!r} under {key!r}")
                )
            texts = {
                "message": outcome.message,
                "message_without_url": outcome.message_without_url,
            }
            for field, text in texts.items():
                for name in _placeholders(text or ""):
                    if name not in OUTCOME_PLACEHOLDERS:
                        out.append(
                            ScriptIssue(
                                ("outcomes", key, field),
                                f"unknown placeholder {{{name}}} (allowed: "
                                f"{', '.join(sorted(OUTCOME_PLACEHOLDERS))})",
                            )
                        )
                    elif name == "resource_url" and field == "message_without_url":
                        out.append(
                            ScriptIssue(
                                ("outcomes", key, field),
                                "cannot use {resource_url}: it is said when there is none",
                            )
                        )
        seen_faq: set[str] = set()
        for i, f in enumerate(self.faq):
            if f.id in seen_faq:
                out.append(ScriptIssue(("faq", i, "id"), f"duplicate FAQ id {f.id!r}"))
            seen_faq.add(f.id)
        return out


def _question_issues(i: int, q: Question) -> list[ScriptIssue]:
    loc: tuple[str | int, ...] = ("questions", i)
    out: list[ScriptIssue] = []
    render = q.render_as()
    body_max = TEXT_BODY_MAX if render == "text" else INTERACTIVE_BODY_MAX
    if len(q.text) > body_max:
        out.append(ScriptIssue((*loc, "text"), f"text is {len(q.text)} chars, max {body_max}"))
    if q.kind is AnswerKind.CHOICE and not q.options:
        out.append(ScriptIssue((*loc, "kind"), "a choice question needs options"))
    if len(q.options) > MAX_LIST_ROWS:
        out.append(
            ScriptIssue(
                (*loc, "options"), f"{len(q.options)} options, max {MAX_LIST_ROWS} (list rows)"
            )
        )
    if q.min is not None and q.max is not None and q.min > q.max:
        out.append(ScriptIssue((*loc, "min"), f"min {q.min} > max {q.max}"))
    title_max = BUTTON_TITLE_MAX if render == "buttons" else LIST_ROW_TITLE_MAX
    seen: set[str] = set()
    for j, o in enumerate(q.options):
        oloc = (*loc, "options", j)
        if o.id in seen:
            out.append(ScriptIssue((*oloc, "id"), f"duplicate option id {o.id!r}"))
        seen.add(o.id)
        if render != "text" and len(o.title) > title_max:
            out.append(
                ScriptIssue(
                    (*oloc, "title"),
                    f"title {o.title!r} is {len(o.title)} chars, max {title_max} "
                    f"when shown as {render}",
                )
            )
        if render == "list" and o.description and len(o.description) > LIST_ROW_DESCRIPTION_MAX:
            out.append(
                ScriptIssue(
                    (*oloc, "description"),
                    f"description is {len(o.description)} chars, max {LIST_ROW_DESCRIPTION_MAX}",
                )
            )
        if o.min is not None and o.max is not None and o.min > o.max:
            out.append(ScriptIssue((*oloc, "min"), f"min {o.min} > max {o.max}"))
    return out


def _placeholders(message: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(message) if name is not None]
    except ValueError as exc:  # unbalanced braces
        return [f"<malformed: {exc}>"]


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc) or "<script>"


def button_id(slot: str, option_id: str) -> str:
    """The reply id of a button / list row: parseable back with :func:`parse_button_id`."""
    return f"{slot}:{option_id}"


def parse_button_id(reply_id: str) -> tuple[str, str] | None:
    """``(slot, option_id)`` from a reply id made by :func:`button_id`, or None."""
    slot, sep, option_id = reply_id.partition(":")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", slot) or not option_id:
        return None
    return slot, option_id
