"""The turn policy: the events of one turn → the new session, its actions and ONE reply.

A turn is what a prospect sent before the bot answers: on WhatsApp, every message of one
burst ("hi" / "we're 40 people" / "need it by March"); in ``leadbot chat``, one typed line.
Each event is one engine step (:func:`dialogs.engine.step`); the turn keeps

- every non-message action of every step, in order;
- the quiet follow-ups (the script's ``quiet_sequence``) when the turn leaves a question open;
- ONE message: the latest step's, unless an earlier step closed the conversation (its outcome,
  a booking link or a deflection, beats a later "thanks, we have all we need").

Pure but for the interpreter it is given (an LLM call, for text the caller did not interpret):
no clock (``now`` is an argument), no store. Whether a turn is answered at all (an opted-out
or bot-paused lead) is the caller's business: that is store state, not dialog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from dialogs.actions import MESSAGE_ACTIONS, Action, ScheduleFollowUps
from dialogs.engine import step
from dialogs.events import Event, TextReceived
from dialogs.interpretation import Interpreter
from dialogs.script import Script
from dialogs.session import Session

if TYPE_CHECKING:
    from dialogs.icp import Icp

__all__ = ["TurnResult", "quiet_follow_ups", "take_turn"]


@dataclass(frozen=True, slots=True)
class TurnResult:
    """What one turn decided.

    ``actions`` is everything to carry out, in order: the steps' non-message actions, then
    the quiet follow-ups (touches before the reply), then ``reply`` (when there is one)."""

    session: Session
    actions: tuple[Action, ...]
    reply: Action | None
    prompt_version: str | None = None  # the LLM prompt that interpreted the turn's text


async def take_turn(
    script: Script,
    session: Session,
    events: Sequence[Event],
    interpreter: Interpreter,
    now: datetime,
    *,
    icp: Icp,
) -> TurnResult:
    """Step ``session`` through ``events`` (one turn) and keep one reply.

    Text the caller has not interpreted (``TextReceived.interpretation`` is None) is given to
    ``interpreter`` first, in the session as it stands after the previous events."""
    actions: list[Action] = []
    reply: Action | None = None
    decided = False
    prompt_version: str | None = None
    for raw in events:
        event = raw
        if isinstance(raw, TextReceived) and raw.interpretation is None:
            interpretation = await interpreter.interpret(script, session, raw.text, now)
            prompt_version = interpretation.prompt_version or prompt_version
            event = TextReceived(raw.text, interpretation)
        was_finished = session.finished
        result = step(script, session, event, now, icp=icp)
        session = result.session
        for action in result.actions:
            if not isinstance(action, MESSAGE_ACTIONS):
                actions.append(action)
            elif not decided:
                reply = action
        decided = decided or (session.finished and not was_finished)
    actions += quiet_follow_ups(script, session)  # before the reply: touches first
    if reply is not None:
        actions.append(reply)
    return TurnResult(session, tuple(actions), reply, prompt_version)


def quiet_follow_ups(script: Script, session: Session) -> list[Action]:
    """The quiet cadence to schedule with the bot's reply to an unfinished conversation
    (or with a turn that needed no reply, e.g. a reaction: the clock starts again).

    The playbook's cadence applies to WhatsApp too: a prospect who stops answering while a
    question is open gets the script's ``quiet_sequence`` (a nudge inside the 24-hour
    window, then the follow-up steps, then dormant). It restarts with every reply of ours
    (a ``repeat`` sequence: a new cycle each time) and the next turn cancels it, as does a
    booking, an opt-out or the end of the conversation (no new one is scheduled then)."""
    if script.quiet_sequence and session.status == "active" and session.open_slot is not None:
        return [ScheduleFollowUps(script.quiet_sequence)]
    return []
