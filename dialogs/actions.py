"""What the engine wants done: its only output.

Actions are frozen data; the bot executes them at the edge (send through the channel, move the
lead's stage, notify the rep, schedule follow-ups). At most one *message* action
(:data:`MESSAGE_ACTIONS`) comes out of one step, because WhatsApp throttles several messages in a
row to the same person and the prospect should get one reply per turn.

``SendCtaUrl.url`` may be the literal ``"{calendly_url}"``: the engine does not know the lead,
so the bot substitutes the Calendly link tagged with the lead (and prefilled) for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from dialogs.interpretation import SlotScalar

if TYPE_CHECKING:
    from dialogs.icp import Qualification

CALENDLY_PLACEHOLDER = "{calendly_url}"

Stage = Literal["new", "contacted", "qualified", "proposal_sent", "won", "lost", "dormant"]


@dataclass(frozen=True, slots=True)
class Button:
    """A reply button: ``id`` comes back in the reply (``"<slot>:<option_id>"``)."""

    id: str
    title: str  # <= 20 chars


@dataclass(frozen=True, slots=True)
class Row:
    """A list row: ``id`` comes back in the reply (``"<slot>:<option_id>"``)."""

    id: str
    title: str  # <= 24 chars
    description: str | None = None  # <= 72 chars


@dataclass(frozen=True, slots=True)
class SendText:
    """Send a plain text message."""

    text: str


@dataclass(frozen=True, slots=True)
class SendButtons:
    """Send an interactive message with up to 3 reply buttons."""

    body: str
    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class SendList:
    """Send an interactive list message with up to 10 rows."""

    body: str
    button_title: str
    rows: tuple[Row, ...]


@dataclass(frozen=True, slots=True)
class SendCtaUrl:
    """Send an interactive call-to-action URL button (the booking link)."""

    body: str
    title: str
    url: str


@dataclass(frozen=True, slots=True)
class SetSlot:
    """Record a qualifying answer on the lead."""

    slot: str
    value: SlotScalar | None
    evidence: str
    unknown: bool = False


@dataclass(frozen=True, slots=True)
class Qualify:
    """Record the scorer's decision (a ``dialogs.icp.Qualification``) on the lead."""

    qualification: Qualification


@dataclass(frozen=True, slots=True)
class SetStage:
    """Move the lead's pipeline stage (through the stage machine, with ``reason``)."""

    to: Stage
    reason: str


@dataclass(frozen=True, slots=True)
class NotifyRep:
    """Tell the lead's rep: a qualified lead, a handoff request, or an unanswered question."""

    kind: Literal["qualified", "handoff", "question"]
    summary: str


@dataclass(frozen=True, slots=True)
class HandOff:
    """Pause the bot for this lead: a human takes over the conversation."""

    reason: str


@dataclass(frozen=True, slots=True)
class OptOut:
    """The prospect asked us to stop; ``evidence`` is what they wrote."""

    evidence: str


@dataclass(frozen=True, slots=True)
class ScheduleFollowUps:
    """Start the named follow-up cadence for this lead."""

    sequence: str


@dataclass(frozen=True, slots=True)
class CancelFollowUps:
    """Cancel every pending follow-up for this lead."""

    reason: str


Message = SendText | SendButtons | SendList | SendCtaUrl
Action = (
    Message
    | SetSlot
    | Qualify
    | SetStage
    | NotifyRep
    | HandOff
    | OptOut
    | ScheduleFollowUps
    | CancelFollowUps
)
MESSAGE_ACTIONS: tuple[type, ...] = (SendText, SendButtons, SendList, SendCtaUrl)
