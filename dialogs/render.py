"""Turn script content into outbound message actions, a session into a rep summary, and an
action into one line for a person tuning a script (:func:`note`).

Everything the prospect reads in one turn goes into one message: a prefix (an FAQ answer, the
greeting, a media note) is merged into the question's body, and interactive bodies are kept
within WhatsApp's 1024-character limit by shortening the prefix, never the question.
"""

from __future__ import annotations

from typing import Any

from dialogs.actions import (
    CALENDLY_PLACEHOLDER,
    Action,
    Button,
    CancelFollowUps,
    HandOff,
    Message,
    NotifyRep,
    OptOut,
    Qualify,
    Row,
    ScheduleFollowUps,
    SendButtons,
    SendCtaUrl,
    SendList,
    SendText,
    SetSlot,
    SetStage,
)
from dialogs.script import (
    INTERACTIVE_BODY_MAX,
    TEXT_BODY_MAX,
    AnswerKind,
    Question,
    Script,
    ScriptOutcome,
    button_id,
)
from dialogs.session import Session, SlotRecord

_ELLIPSIS = "…"


def join(prefix: str | None, text: str, limit: int = TEXT_BODY_MAX) -> str:
    """``prefix`` and ``text`` as one message body of at most ``limit`` chars.

    The prefix is shortened first because the question after it is what the prospect must
    answer.
    """
    if not prefix:
        return text[:limit]
    room = limit - len(text) - 2
    if room <= len(_ELLIPSIS):
        return text[:limit]
    if len(prefix) > room:
        prefix = prefix[: room - len(_ELLIPSIS)].rstrip() + _ELLIPSIS
    return f"{prefix}\n\n{text}"


def ask(
    script: Script, question: Question, *, text: str | None = None, prefix: str = ""
) -> Message:
    """The message that asks ``question`` (with its reply buttons or list, if it has options).

    ``text`` replaces the question text (a re-ask); ``prefix`` goes before it.
    """
    body = text or question.text
    match question.render_as():
        case "buttons":
            return SendButtons(join(prefix, body, INTERACTIVE_BODY_MAX), _choices(question))
        case "list":
            return SendList(
                join(prefix, body, INTERACTIVE_BODY_MAX), script.list_button, _choices(question)
            )
        case _:
            return SendText(join(prefix, body))


# Buttons/rows per question, built once: the engine asks the same few questions all day.
# Keyed by id() with the question kept in the value, so a recycled id can never match.
_CHOICES: dict[int, tuple[Question, tuple[Any, ...]]] = {}
_CHOICES_MAX = 1024


def _choices(question: Question) -> tuple[Any, ...]:
    cached = _CHOICES.get(id(question))
    if cached is not None and cached[0] is question:
        return cached[1]
    choices: tuple[Button | Row, ...]
    if question.render_as() == "buttons":
        choices = tuple(Button(button_id(question.slot, o.id), o.title) for o in question.options)
    else:
        choices = tuple(
            Row(button_id(question.slot, o.id), o.title, o.description) for o in question.options
        )
    if len(_CHOICES) >= _CHOICES_MAX:
        _CHOICES.clear()
    _CHOICES[id(question)] = (question, choices)
    return choices


def with_prefix(message: Message, prefix: str) -> Message:
    """``message`` with ``prefix`` merged into its body."""
    match message:
        case SendText(text):
            return SendText(join(prefix, text))
        case SendButtons(body, buttons):
            return SendButtons(join(prefix, body, INTERACTIVE_BODY_MAX), buttons)
        case SendList(body, button_title, rows):
            return SendList(join(prefix, body, INTERACTIVE_BODY_MAX), button_title, rows)
        case SendCtaUrl(body, title, url):
            return SendCtaUrl(join(prefix, body, INTERACTIVE_BODY_MAX), title, url)
    raise TypeError(f"not a message: {message!r}")  # pragma: no cover - exhaustive above


def outcome_message(script: Script, name: str | None, outcome: ScriptOutcome) -> Message:
    """The closing message for ``outcome``: the booking button when qualified, else text.

    ``name`` is the prospect's profile name, for ``{name}``. Placeholders are filled from a
    fixed dict (the loader refuses any others). The Calendly link stays the literal
    ``{calendly_url}``: only the bot knows the lead to tag it with.
    Without a resource URL, ``message_without_url`` (when the script has one) is said.
    """
    values = {
        "calendly_url": CALENDLY_PLACEHOLDER,
        "resource_url": script.resource_url or outcome.url or "",
        "name": name or "",
    }
    template = outcome.message
    if not values["resource_url"] and outcome.message_without_url:
        template = outcome.message_without_url  # no dangling "this guide: " without a link
    text = template.format_map(values)
    if outcome.kind == "qualified":
        return SendCtaUrl(
            body=text[:INTERACTIVE_BODY_MAX],
            title=script.cta_title,
            url=outcome.url or CALENDLY_PLACEHOLDER,
        )
    return SendText(text[:TEXT_BODY_MAX])


def body_of(message: Message) -> str:
    """The text the prospect reads in ``message`` (for the history)."""
    match message:
        case SendText(text):
            return text
        case SendButtons(body) | SendList(body) | SendCtaUrl(body):
            return body
    raise TypeError(f"not a message: {message!r}")  # pragma: no cover - exhaustive above


def describe(question: Question | None, record: SlotRecord) -> str:
    """A filled slot as a person would say it: the option title, "50,000 currency", ..."""
    if record.unknown or record.value is None:
        return "don't know"
    value = record.value
    if question is not None:
        option = question.option(str(value))
        if option is not None:
            return option.title
        if question.kind is AnswerKind.NUMBER and isinstance(value, int | float):
            number = f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"
            # "currency" is a kind, not a unit anyone says: show the bare number for it.
            unit = question.unit if question.unit not in (None, "currency") else None
            return f"{number} {unit}" if unit else number
    return str(value)


def summary(session: Session, script: Script | None = None) -> str:
    """The lead's answers, human readable, for the rep (one line per slot, then status).

    With ``script``, slots follow the question order and show option titles; without it,
    raw values in the order they were filled.
    """
    order = list(script.slots) if script else []
    order += [s for s in session.slots if s not in order]
    lines = []
    for slot in order:
        record = session.slots.get(slot)
        question = _question(script, slot)
        label = slot.replace("_", " ").capitalize()
        if record is None:
            lines.append(f"{label}: (not answered)")
            continue
        said = describe(question, record)
        # The prospect's own words, unless they add nothing (a tapped option's title).
        evidence = f' ("{record.evidence}")' if record.evidence not in ("", said) else ""
        lines.append(f"{label}: {said}{evidence}")
    if session.name:
        lines.insert(0, f"Name: {session.name}")
    q = session.qualification
    if q:
        lines.append(
            f"Decision: {q.get('decision')} ({q.get('tier')}, fit {q.get('fit_score')}, "
            f"intent {q.get('intent_score')})"
        )
    lines += [f'Asked: "{o.text}"' for o in session.off_script]
    lines.append(f"Status: {session.status}")
    return "\n".join(lines)


def _question(script: Script | None, slot: str) -> Question | None:
    if script is None:
        return None
    try:
        return script.question(slot)
    except KeyError:
        return None


def note(action: Action) -> str:
    """One line saying what a non-message action does (``leadbot chat``, the console's
    try-it chat)."""
    match action:
        case SetSlot(slot, value, evidence, unknown):
            shown = "don't know" if unknown else repr(value)
            return f"slot {slot} = {shown} (from {evidence!r})"
        case Qualify(q):
            return f"qualification: {q.decision} ({q.tier})"
        case SetStage(to, reason):
            return f"stage → {to}: {reason}"
        case NotifyRep(kind, _):
            return f"rep notified ({kind})"
        case HandOff(reason):
            return f"handed off: {reason}"
        case OptOut():
            return "opted out"
        case ScheduleFollowUps(sequence):
            return f"follow-ups scheduled: {sequence}"
        case CancelFollowUps(reason):
            return f"follow-ups cancelled: {reason}"
    return repr(action)
