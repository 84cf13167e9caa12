"""Scripted prospects for whole-conversation tests (issue 16), and the driver that talks to them.

A :class:`Persona` is a prospect who answers whatever the bot asks, in their own words: one reply
per question (a second, if the question comes again), an opener, and which facts each message
states *as the prospect means it* ("We run a 40-person agency" states the company size, whatever
the bot makes of it). :func:`converse` runs a persona through the engine the way the WhatsApp
processor does (the first message picks the script's language, later ones may move it; the
rules interpreter reads every text) and records what happened: the transcript, how many times
each question was put, and every question put again after the prospect had answered it.

The personas are written as real prospects type (paraphrases, typos, emoji, ranges, dates, several
facts at once, the wrong question answered), never tuned to what the parser reads. Shared by the
engine-level tests (tests/dialogs/test_conversations.py) and the webhook ones
(tests/bot/whatsapp/test_prospect_conversations.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dialogs.actions import MESSAGE_ACTIONS, Action, SendCtaUrl
from dialogs.catalog import ScriptCatalog, ScriptVersionEntry
from dialogs.engine import step
from dialogs.events import TextReceived
from dialogs.icp import load_icp
from dialogs.loader import load_scripts
from dialogs.multilingual import follow_language
from dialogs.render import body_of
from dialogs.session import Session

GUIDE = "https://www.example.com/guide"
SCRIPTS = load_scripts(
    Path(__file__).resolve().parents[2] / "dialogs" / "scripts", resource_url=GUIDE
)
CATALOG = ScriptCatalog([ScriptVersionEntry(s, "", "file") for s in SCRIPTS.values()])
ICP = load_icp()
DEFAULT_SCRIPT = "b2b_default"  # what the bot starts a new conversation on
# A Monday in mid-February: "15/03" is a month away, "Q1" ends in six weeks.
T0 = datetime(2027, 2, 15, 10, 0, tzinfo=UTC)
MAX_TURNS = 14  # a conversation still open after this many prospect messages is stuck
SLOTS = ("need", "company_size", "budget", "timeline")
# What a strong lead may end in: the booking link, or a person taking over. Never a deflection.
KEPT = frozenset({"qualified", "handoff"})


@dataclass(frozen=True)
class Say:
    """One prospect message and the slots it states (None: the slot it answers)."""

    text: str
    states: tuple[str, ...] | None = None


def say(text: str, *states: str) -> Say:
    """A message stating ``states`` (none given: just the question it answers)."""
    return Say(text, states or None)


@dataclass(frozen=True)
class Persona:
    """A scripted prospect: the opener, then per slot the replies to its 1st and 2nd ask."""

    name: str
    language: str
    strong: bool
    opener: Say
    answers: Mapping[str, tuple[Say, ...]]
    why: str = ""  # for a known miss: what goes wrong

    def reply(self, slot: str, nth: int) -> Say:
        """The answer to the ``nth`` (1-based) ask of ``slot``; the last one again after."""
        replies = self.answers[slot]
        chosen = replies[min(nth, len(replies)) - 1]
        return chosen if chosen.states is not None else Say(chosen.text, (slot,))


def persona(
    name: str,
    language: str,
    *,
    strong: bool,
    opener: Say | str,
    need: Say | str | tuple[Say | str, ...],
    company_size: Say | str | tuple[Say | str, ...],
    budget: Say | str | tuple[Say | str, ...],
    timeline: Say | str | tuple[Say | str, ...],
    why: str = "",
) -> Persona:
    """A :class:`Persona`; plain strings are messages that answer only the question asked, and
    a plain-string opener states nothing."""

    def many(value: Say | str | tuple[Say | str, ...]) -> tuple[Say, ...]:
        items = value if isinstance(value, tuple) else (value,)
        return tuple(Say(i) if isinstance(i, str) else i for i in items)

    first = Say(opener, ()) if isinstance(opener, str) else opener
    answers = {
        "need": many(need),
        "company_size": many(company_size),
        "budget": many(budget),
        "timeline": many(timeline),
    }
    return Persona(name, language, strong, first, answers, why)


@dataclass
class Transcript:
    """What happened in one conversation."""

    persona: Persona
    lines: list[tuple[str, str]] = field(default_factory=list)  # (who, text)
    asks: Counter[str] = field(default_factory=Counter)  # slot -> times the bot put it
    repeats: list[str] = field(default_factory=list)  # questions put after they were answered
    asked_filled: list[str] = field(default_factory=list)  # put while its slot held an answer
    status: str = "active"
    language: str = ""  # the script's language at the end
    languages: list[str] = field(default_factory=list)  # the script's language, turn by turn
    slots: dict[str, object] = field(default_factory=dict)
    booking_link: bool = False
    replies_per_turn: list[int] = field(default_factory=list)

    @property
    def kept(self) -> bool:
        """The lead ended booked or with a person (not deflected, not stuck)."""
        return self.status in KEPT

    @property
    def right_decision(self) -> bool:
        """Strong leads kept, weak ones deflected."""
        if self.persona.strong:
            return self.kept
        return self.status == "disqualified"

    @property
    def asked_thrice(self) -> list[str]:
        """Slots put to the prospect three times or more."""
        return sorted(s for s, n in self.asks.items() if n >= 3)

    def problems(self) -> list[str]:
        """Everything wrong with this conversation (empty: a good one)."""
        found: list[str] = []
        if not self.right_decision:
            want = "kept (booked or handed over)" if self.persona.strong else "deflected"
            found.append(f"ended {self.status}, wanted {want}; slots {self.slots}")
        found += [f"asked {s} three times" for s in self.asked_thrice]
        found += self.repeats
        found += [f"asked {s} while the session held its answer" for s in self.asked_filled]
        wrong = [lang for lang in self.languages if lang != self.persona.language]
        if wrong or self.language != self.persona.language:
            found.append(
                f"answered in {self.languages} (ended {self.language!r}), prospect writes "
                f"{self.persona.language!r}"
            )
        if any(n != 1 for n in self.replies_per_turn):
            found.append(f"replies per turn {self.replies_per_turn}, want one each")
        return found

    def render(self) -> str:
        """The conversation as the two people saw it."""
        return "\n".join(f"{who:>8}: {text}" for who, text in self.lines)


def _message(actions: tuple[Action, ...]) -> list[str]:
    return [body_of(a) for a in actions if isinstance(a, MESSAGE_ACTIONS)]  # type: ignore[arg-type]


@dataclass
class Listener:
    """The prospect's side of a conversation, whatever carries it (the engine, the webhook):
    fed the bot's replies and state after each message, it records the transcript and says
    what the prospect writes next."""

    transcript: Transcript
    stated: set[str] = field(default_factory=set)

    @property
    def first(self) -> Say:
        """The opener."""
        return self.transcript.persona.opener

    def heard(
        self,
        said: Say,
        replies: list[str],
        *,
        status: str,
        open_slot: str | None,
        filled: set[str],
        booking_link: bool,
        language: str,
    ) -> Say | None:
        """Record the turn of ``said``; the next message, or None when the chat is decided."""
        out = self.transcript
        out.replies_per_turn.append(len(replies))
        out.languages.append(language)
        out.booking_link = out.booking_link or booking_link
        out.lines.append(("prospect", said.text))
        out.lines += [("bot", r) for r in replies]
        self.stated |= set(said.states or ())
        out.status = status
        if status != "active" or open_slot is None:
            return None
        out.asks[open_slot] += 1
        if open_slot in filled:
            out.asked_filled.append(open_slot)
        if open_slot in self.stated:
            p = out.persona
            out.repeats.append(f"asked {open_slot} again after {p.name} had answered it")
        return out.persona.reply(open_slot, out.asks[open_slot])


def converse(p: Persona) -> Transcript:
    """Run ``p`` through the engine as the WhatsApp processor would; see the module doc."""
    listener = Listener(Transcript(p))
    script = CATALOG.current(DEFAULT_SCRIPT)
    session: Session | None = None
    message: Say | None = listener.first
    for turn in range(MAX_TURNS):
        if message is None:
            break
        now = T0 + timedelta(minutes=turn)
        if session is None:
            script, _ = follow_language(
                CATALOG, script, Session.new(script, now), message.text, new=True
            )
            session = Session.new(script, now)
        else:
            script, session = follow_language(CATALOG, script, session, message.text, new=False)
        result = step(script, session, TextReceived(message.text), now, icp=ICP)
        session = result.session
        message = listener.heard(
            message,
            _message(result.actions),
            status=session.status,
            open_slot=session.open_slot,
            filled=set(session.slots),
            booking_link=any(isinstance(a, SendCtaUrl) for a in result.actions),
            language=script.language,
        )
    assert session is not None
    out = listener.transcript
    out.language = script.language
    out.slots = {k: (None if r.unknown else r.value) for k, r in session.slots.items()}
    return out
