"""What the bot says once the conversation is decided: helpful, never a loop.

A prospect often keeps writing after the booking link or the deflection. Each message gets
the most useful of:

- a request for a person hands the chat to one (always works);
- new facts from a deflected prospect are scored again, and if nothing now rules them out
  the lead is reopened and gets the booking link (turning away a strong lead is the costliest
  mistake there is);
- a question the FAQ answers gets that answer (once per entry);
- any other question, or something said after the closing line, goes to the rep with the
  prospect's words attached, and the prospect is told so once;
- small talk gets the closing line once, then nothing: never the same canned line twice.
"""

from __future__ import annotations

from dialogs.actions import SetStage
from dialogs.interpretation import Intent, Interpretation
from dialogs.steps import StepBuilder


def reply_after_decision(turn: StepBuilder, text: str, interpretation: Interpretation) -> None:
    """Answer ``text`` in a qualified or disqualified conversation."""
    if interpretation.intent is Intent.HUMAN:
        turn.hand_off("prospect asked for a person", ack=turn.script.handoff_ack)
        return
    if turn.status == "disqualified" and _reopened(turn, interpretation):
        return
    entry = turn.script.faq_entry(interpretation.faq_id)
    if entry is not None and turn.say_once(f"faq:{entry.id}"):
        turn.courtesy(prefix=entry.answer)
        return
    if interpretation.intent is Intent.QUESTION:
        turn.forward(text)
    elif not turn.said("finished"):
        turn.courtesy()
    elif interpretation.intent is not Intent.GREETING:
        turn.forward(text)  # they keep writing: a person should read it


def _reopened(turn: StepBuilder, interpretation: Interpretation) -> bool:
    """Fill what the message states; when that lifts the deflection, decide again."""
    if not turn.fill(interpretation.slots, explicit=True):
        return False
    verdict = turn.verdict()
    if verdict.decision == "disqualified":
        return False
    turn.act(SetStage("contacted", "reopened: new answers after the deflection"))
    turn.update(status="active")
    turn.finish(q=verdict)
    return True
