"""From the messages of one burst to the engine events of one turn (pure).

People write in bursts ("hi" / "we're 40 people" / "need it by March"): everything that
arrived within the burst window is one turn. Consecutive texts are joined into one
:class:`TextReceived`; a tap is its own :class:`ChoiceSelected`; a photo or a voice note
matters only when it is all they sent (then :class:`UnsupportedMedia` gets the polite "I can
only read text"); a caption is text. Edits, revokes and system notices are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.whatsapp.attribution import strip_ref
from bot.whatsapp.envelope import InboundMessage
from dialogs.events import ChoiceSelected, Event, Started, TextReceived, UnsupportedMedia


def build_events(messages: Sequence[InboundMessage]) -> list[Event]:
    """The engine events of one turn made of ``messages`` (in arrival order)."""
    events: list[Event] = []
    texts: list[str] = []
    media: list[str] = []
    welcome = False

    def flush() -> None:
        if texts:
            events.append(TextReceived("\n".join(texts)))
            texts.clear()

    for message in messages:
        if message.kind == "text" or (message.kind == "media" and message.text):
            text = strip_ref(message.text or "")
            if text:
                texts.append(text)
            else:
                welcome = True  # only a ref code: they clicked a link and sent it as is
        elif message.kind == "choice" and message.choice_id:
            flush()
            events.append(ChoiceSelected(message.choice_id))
        elif message.kind in ("media", "unsupported"):
            media.append(message.media_kind or "unsupported")
        elif message.kind == "welcome":
            welcome = True
    flush()
    if events:
        return events
    readable = [kind for kind in media if kind != "reaction"]
    if readable:
        return [UnsupportedMedia(readable[-1])]
    if welcome:
        return [Started()]
    if media:
        return [UnsupportedMedia(media[-1])]  # a lone reaction: the engine stays silent
    return []
