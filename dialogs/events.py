"""What can happen to a conversation: the engine's inputs.

The bot turns each inbound WhatsApp message (or a timer) into one of these and passes it to
:func:`dialogs.engine.step`. They are plain frozen data.
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.interpretation import Interpretation


@dataclass(frozen=True, slots=True)
class Started:
    """First contact: greet and ask the first question."""


@dataclass(frozen=True, slots=True)
class TextReceived:
    """The prospect wrote text (a burst of quick messages arrives joined as one).

    ``interpretation`` is what the bot's interpreter (rules or LLM) made of it; when None the
    engine runs the rules interpreter itself.
    """

    text: str
    interpretation: Interpretation | None = None


@dataclass(frozen=True, slots=True)
class ChoiceSelected:
    """The prospect tapped a button or list row; ``option_id`` is its reply id,
    ``"<slot>:<option_id>"`` as made by :func:`dialogs.script.button_id`."""

    option_id: str


@dataclass(frozen=True, slots=True)
class UnsupportedMedia:
    """Something we cannot read: image, audio, sticker, location, reaction, ..."""

    kind: str


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The prospect went quiet past the conversation timeout."""


Event = Started | TextReceived | ChoiceSelected | UnsupportedMedia | TimedOut

__all__ = [
    "ChoiceSelected",
    "Event",
    "Started",
    "TextReceived",
    "TimedOut",
    "UnsupportedMedia",
]
