"""The dialog engine: ``step(script, session, event, now) -> StepResult(session', actions)``.

Pure and synchronous: no I/O, no clock (``now`` is an argument), no randomness. The bot calls
it once per inbound event with the stored session and executes the returned actions.

Rules it keeps (ARCHITECTURE "How the bot talks"):

- at most one outbound message per step: everything said in a turn is merged into one body;
- every slot a message gives is filled, in any order; a filled slot is never asked again (an
  "I don't know" may later be replaced by a real answer, a real answer is kept);
- a failed answer is re-asked up to ``max_reasks`` times, then marked unknown;
- after an opt-out nothing is ever sent again; during a handoff a person is talking, so the
  engine stays silent; a finished conversation gets a short courteous reply, never a restart
  and never the same canned line twice (:mod:`dialogs.after_decision`);
- ``injection_suspected`` changes nothing but the history: the decision is the scorer's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from dialogs.actions import Action, ScheduleFollowUps
from dialogs.after_decision import reply_after_decision
from dialogs.events import (
    ChoiceSelected,
    Event,
    Started,
    TextReceived,
    TimedOut,
    UnsupportedMedia,
)
from dialogs.interpretation import Intent, Interpretation, SlotValue
from dialogs.render import summary
from dialogs.script import Script, parse_button_id
from dialogs.session import Session
from dialogs.steps import StepBuilder

if TYPE_CHECKING:
    from dialogs.icp import Icp

__all__ = ["StepResult", "SyncInterpreter", "step", "summary"]

SILENT_KINDS = frozenset({"reaction"})  # a 👍 on our message needs no "I can only read text"


class SyncInterpreter(Protocol):
    """The synchronous side of an interpreter (the rules interpreter has one)."""

    def interpret_now(
        self, script: Script, session: Session, text: str, now: datetime
    ) -> Interpretation:
        """Interpret ``text`` for the open question of ``session`` at ``now``."""
        ...


@dataclass(frozen=True, slots=True)
class StepResult:
    """The session after the event, and what to do about it (in order)."""

    session: Session
    actions: tuple[Action, ...]


_default_interpreter: SyncInterpreter | None = None


def _rules() -> SyncInterpreter:
    # Imported on first use: the rules interpreter imports this package's data types.
    global _default_interpreter  # noqa: PLW0603 - one stateless instance, built lazily
    if _default_interpreter is None:
        from dialogs.interpreters.rules import RulesInterpreter

        _default_interpreter = RulesInterpreter()
    return _default_interpreter


def step(
    script: Script,
    session: Session,
    event: Event,
    now: datetime,
    *,
    icp: Icp,
    interpreter: SyncInterpreter | None = None,
) -> StepResult:
    """Advance ``session`` by ``event`` at ``now`` (UTC-aware).

    :param icp: the ideal customer profile the answers are scored against when complete.
    :param interpreter: used for a :class:`TextReceived` without an interpretation; the rules
        interpreter by default.
    :raises ValueError: ``session`` belongs to another script, or ``now`` is naive.
    """
    if session.script_id != script.id:
        raise ValueError(f"session is for script {session.script_id!r}, not {script.id!r}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    if session.status == "opted_out":
        return StepResult(session, ())  # nothing, ever, after an opt-out

    interpretation: Interpretation | None = None
    if isinstance(event, TextReceived):
        interpretation = event.interpretation or (interpreter or _rules()).interpret_now(
            script, session, event.text, now
        )
    turn = StepBuilder(script, session, now, icp)
    if interpretation is not None and interpretation.source == "llm":
        turn.prompt_version = interpretation.prompt_version
        turn.phrasing = interpretation.phrasing  # wording only: the steps pick the question
    _HANDLERS[type(event)](turn, event, interpretation)
    new_session, actions = turn.result()
    return StepResult(new_session, actions)


def _on_started(turn: StepBuilder, event: Event, _: Interpretation | None) -> None:
    if turn.status != "active":
        turn.courtesy()
    elif turn.fresh:
        turn.begin()
        turn.ask_next(prefix=turn.script.greeting)
    else:
        turn.ask_next()  # a second "start" (ad clicked again) resumes, never restarts


def _on_text(turn: StepBuilder, event: Event, interpretation: Interpretation | None) -> None:
    assert isinstance(event, TextReceived) and interpretation is not None
    flags = ("injection_suspected",) if interpretation.injection_suspected else ()
    turn.heard(event.text, *flags)
    if interpretation.intent is Intent.STOP:
        turn.opt_out(event.text)
        return
    if turn.status == "handoff":
        return  # a person is talking to them
    if turn.status != "active":
        reply_after_decision(turn, event.text, interpretation)
        return

    first_contact = turn.fresh
    if first_contact:
        turn.begin()
    asked = turn.open_slot
    filled = turn.fill(interpretation.slots)
    if interpretation.intent is Intent.HUMAN:
        turn.hand_off("prospect asked for a person", ack=turn.script.handoff_ack)
        return

    prefix: str | None = turn.script.greeting if first_contact else None
    if interpretation.intent is Intent.QUESTION:
        answer = turn.off_script(event.text, interpretation.faq_id)
        if answer is None:
            return  # too many we could not answer: handed off
        turn.ask_next(prefix=f"{prefix}\n\n{answer}" if prefix else answer)
        return
    # Answering any question (even not the open one) or just saying hi is not a miss.
    if asked is None or filled or interpretation.intent is Intent.GREETING:
        turn.ask_next(prefix=prefix)
    else:
        turn.missed(asked, evidence=event.text)


def _on_choice(turn: StepBuilder, event: Event, _: Interpretation | None) -> None:
    assert isinstance(event, ChoiceSelected)
    turn.heard(event.option_id, "choice")
    if turn.status == "handoff":
        return
    if turn.status != "active":
        turn.courtesy(always=True)  # a tap is deliberate: it is answered, the button again
        return
    parsed = parse_button_id(event.option_id)
    question = None
    if parsed is not None:
        question = next((q for q in turn.script.questions if q.slot == parsed[0]), None)
    option = question.option(parsed[1]) if question and parsed else None
    if question is None or option is None:
        # A stale button from an older script version: ask again, without counting it.
        turn.ask_next()
        return
    if turn.fresh:
        turn.begin()  # a tap on a button from an earlier chat can be the first event
    turn.fill({question.slot: SlotValue(option.id, evidence=option.title)}, explicit=True)
    turn.ask_next()


def _on_media(turn: StepBuilder, event: Event, _: Interpretation | None) -> None:
    assert isinstance(event, UnsupportedMedia)
    if event.kind in SILENT_KINDS:
        return
    turn.heard(f"[{event.kind}]", f"media:{event.kind}")
    if turn.status == "handoff":
        return
    if turn.status != "active":
        turn.courtesy()
        return
    if turn.fresh:
        turn.begin()
        turn.ask_next(prefix=f"{turn.script.greeting}\n\n{turn.script.unsupported_media}")
        return
    turn.ask_next(prefix=turn.script.unsupported_media)


def _on_timeout(turn: StepBuilder, event: Event, _: Interpretation | None) -> None:
    session = turn.session
    if session.status != "active" or session.open_slot is None:
        return
    if not session.nudged:
        turn.update(nudged=True)
        turn.ask_next(prefix=turn.script.nudge)
    elif turn.script.quiet_sequence and session.follow_ups is None:
        turn.update(follow_ups=turn.script.quiet_sequence)
        turn.act(ScheduleFollowUps(turn.script.quiet_sequence))


_Handler = Callable[[StepBuilder, Event, Interpretation | None], None]
_HANDLERS: dict[type, _Handler] = {
    Started: _on_started,
    TextReceived: _on_text,
    ChoiceSelected: _on_choice,
    UnsupportedMedia: _on_media,
    TimedOut: _on_timeout,
}
