"""What the LLM interpreter adds around one message: the conversation so far, going in, and
the model's wording of the next question, coming out.

Going in, the history is bounded (the last :data:`HISTORY_TURNS` turns, each normalized and
capped at :data:`TURN_CHARS`) and goes only into the human message, inside its own tags: the
prospect's earlier words are as untrusted as the current ones. A turn the engine flagged as an
injection attempt is withheld, not repeated to the model.

Coming out, a wording is kept only when it passes the same output filter as follow-up drafts
(:mod:`dialogs.output_filter`: no links, no prices or offers, a length cap); otherwise the
script's own text is asked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dialogs.interpretation import Phrasing
from dialogs.output_filter import DraftPolicy, problems
from dialogs.parsing.normalize import normalize

if TYPE_CHECKING:
    from dialogs.interpreters.schema import NextQuestion
    from dialogs.session import Session

logger = logging.getLogger(__name__)

HISTORY_TURNS = 6  # enough for the last three question/answer pairs
TURN_CHARS = 300  # of each earlier turn; the current message has its own, larger cap
PHRASING_CHARS = 300  # a question on a phone screen, not a letter
# Nothing the prospect could act on: no link, no price, no offer; short.
PHRASING_POLICY = DraftPolicy(allowed_urls=(), allowed_prices=(), max_length=PHRASING_CHARS)
_WITHHELD = "(message withheld: it looked like instructions to the assistant)"


def history_text(session: Session, turns: int = HISTORY_TURNS, chars: int = TURN_CHARS) -> str:
    """The last ``turns`` turns of ``session``, oldest first, one ``role: text`` line each."""
    if turns <= 0 or not session.history:
        return "(none: this is their first message)"
    lines = []
    for turn in session.history[-turns:]:
        if "injection_suspected" in turn.flags:
            text = _WITHHELD
        else:
            text = normalize(turn.text, chars) or "(empty)"
        lines.append(f"{'prospect' if turn.role == 'prospect' else 'bot'}: {text}")
    return "\n".join(lines)


def checked_phrasing(proposed: NextQuestion | None) -> Phrasing | None:
    """The model's wording if it passes the output filter, else None (the script's text)."""
    if proposed is None:
        return None
    text = normalize(proposed.text, PHRASING_CHARS + 1)  # one over: the filter says "too long"
    found = problems(text, PHRASING_POLICY)
    if found:
        logger.info(
            "LLM wording of %s refused (%s); asking the script's text",
            proposed.slot,
            "; ".join(found),
        )
        return None
    return Phrasing(slot=proposed.slot, text=text)
