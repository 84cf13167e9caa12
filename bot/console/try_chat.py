"""The script editor's try-it chat: a script's text played against a pretend prospect.

The same turns as ``leadbot chat`` and WhatsApp (:func:`dialogs.turn.take_turn`, one reply a
turn) on the rules interpreter, from the text in the editor (validated, not yet published).
Stateless: the page sends the script text and what the prospect said so far (hidden
fields), and every request replays the conversation from the start (the rules interpreter
is deterministic). So it works on any worker, and nothing is kept: no lead, no session row,
no outbox row, nothing sent. Conversations are short; :data:`MAX_INPUTS` bounds them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from dialogs.actions import (
    CALENDLY_PLACEHOLDER,
    MESSAGE_ACTIONS,
    Action,
    SendButtons,
    SendCtaUrl,
    SendList,
    SendText,
)
from dialogs.events import ChoiceSelected, Event, TextReceived
from dialogs.icp import Icp
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.render import note
from dialogs.script import Script
from dialogs.session import Session

MAX_INPUTS = 40  # prospect messages replayed at most (a try, not a load test)
TEXT_MAX = 1000  # characters of one typed message
NO_BOOKING_LINK = "(the booking link: LEADBOT_CALENDLY_URL)"


@dataclass(frozen=True, slots=True)
class Said:
    """One thing the prospect did: typed ``text`` or tapped the choice with id ``choice``."""

    kind: Literal["text", "choice"]
    value: str

    def encode(self) -> str:
        """As a hidden form field: ``text:…`` or ``choice:…``."""
        return f"{self.kind}:{self.value}"

    @classmethod
    def decode(cls, raw: str) -> Said | None:
        """A field made by :meth:`encode`; None for anything else."""
        kind, sep, value = raw.partition(":")
        if not sep or not value.strip():
            return None
        if kind == "text":
            return cls("text", value[:TEXT_MAX])
        if kind == "choice":
            return cls("choice", value[:200])
        return None


@dataclass(frozen=True, slots=True)
class OfferedChoice:
    """A button or list row the bot offered."""

    id: str
    title: str
    description: str = ""


@dataclass(slots=True)
class Bubble:
    """One message in the chat, with what the bot did besides talking (``notes``)."""

    role: Literal["prospect", "bot"]
    text: str
    choices: tuple[OfferedChoice, ...] = ()
    link: tuple[str, str] | None = None  # (title, url) of a call-to-action button
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Conversation:
    """The chat so far: the bubbles, what to replay next time, and where it stands."""

    bubbles: list[Bubble]
    said: list[Said]
    session: Session

    @property
    def offered(self) -> tuple[OfferedChoice, ...]:
        """The choices of the bot's last message (the ones the prospect may tap now)."""
        last = self.bubbles[-1] if self.bubbles else None
        return last.choices if last is not None and last.role == "bot" else ()


async def play(
    script: Script,
    said: list[Said],
    *,
    icp: Icp,
    now: datetime,
    calendly_url: str = "",
) -> Conversation:
    """Replay ``said`` (at most :data:`MAX_INPUTS`) against ``script`` from a new session."""
    # Imported here: the turn policy pulls in the engine, needed only when someone tries.
    from dialogs.turn import take_turn

    interpreter = RulesInterpreter()
    session = Session.new(script, now, name="Try")
    bubbles: list[Bubble] = []
    kept: list[Said] = []
    for item in said[:MAX_INPUTS]:
        offered = bubbles[-1].choices if bubbles and bubbles[-1].role == "bot" else ()
        bubbles.append(Bubble("prospect", _shown(item, offered)))
        result = await take_turn(script, session, [_event(item)], interpreter, now, icp=icp)
        session = result.session
        bubbles.append(_reply(result.actions, calendly_url))
        kept.append(item)
    return Conversation(bubbles, kept, session)


def _event(item: Said) -> Event:
    return ChoiceSelected(item.value) if item.kind == "choice" else TextReceived(item.value)


def _shown(item: Said, offered: tuple[OfferedChoice, ...]) -> str:
    if item.kind == "text":
        return item.value
    title = next((c.title for c in offered if c.id == item.value), item.value)
    return f"[{title}]"


def _reply(actions: tuple[Action, ...], calendly_url: str) -> Bubble:
    bubble = Bubble("bot", "")
    for action in actions:
        if not isinstance(action, MESSAGE_ACTIONS):
            bubble.notes.append(note(action))
            continue
        match action:
            case SendText(text):
                bubble.text = text
            case SendButtons(body, buttons):
                bubble.text = body
                bubble.choices = tuple(OfferedChoice(b.id, b.title) for b in buttons)
            case SendList(body, _, rows):
                bubble.text = body
                bubble.choices = tuple(
                    OfferedChoice(r.id, r.title, r.description or "") for r in rows
                )
            case SendCtaUrl(body, title, url):
                bubble.text = body
                link = url.replace(CALENDLY_PLACEHOLDER, calendly_url or NO_BOOKING_LINK)
                bubble.link = (title, link)
    bubble.text = bubble.text.replace(CALENDLY_PLACEHOLDER, calendly_url or NO_BOOKING_LINK)
    return bubble
