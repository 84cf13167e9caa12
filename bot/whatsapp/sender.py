"""Who wrote a WhatsApp turn: the address replies go to, and the sender's contact points.

The WhatsApp id Meta sends (``wa_id``) is the channel's own address: replies go to exactly that,
whatever it looks like. The lead's E.164 phone is derived from it with the countries' quirks
(``scheduler.pipeline.contacts.phone_from_wa_id``); when no phone can be derived the message is
still stored and answered, and the lead is flagged (:data:`PHONE_FLAG` in its attribution). A
username-only sender has no ``wa_id``: their BSUID is both their address (pywa sends it as
``recipient`` instead of ``to``) and their identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.whatsapp.envelope import InboundMessage
from scheduler.pipeline.contacts import phone_from_wa_id
from scheduler.pipeline.identity import BSUID_SENDER, Kind, Point

# Attribution key set on a lead whose WhatsApp id gives no phone number we can read.
PHONE_FLAG = "whatsapp_phone"


@dataclass(frozen=True, slots=True)
class WhatsAppSender:
    """The identity of one inbox sender (``+<wa_id>`` or ``bsuid:<id>``)."""

    address: str  # what replies are sent to: "+<wa_id>" as Meta sent it, or the BSUID
    phone: str | None  # the derived E.164 phone, if any
    points: tuple[Point, ...]  # every contact point the messages carry

    @property
    def phone_underivable(self) -> bool:
        """A WhatsApp id was sent but reads as no phone number."""
        return self.phone is None and any(p.kind is Kind.WHATSAPP for p in self.points)


def sender_of(sender: str, messages: Sequence[InboundMessage]) -> WhatsAppSender:
    """The :class:`WhatsAppSender` of an inbox ``sender`` key and its messages."""
    points: list[Point] = []
    phone: str | None = None
    if sender.startswith(BSUID_SENDER):
        address = sender[len(BSUID_SENDER) :]
    else:
        address = sender
        points.append(Point(Kind.WHATSAPP, sender))
        phone = phone_from_wa_id(sender)
        if phone is not None:
            points.append(Point(Kind.PHONE, phone))
    for bsuid in dict.fromkeys(m.user_id for m in messages if m.user_id):
        points.append(Point(Kind.BSUID, bsuid))
    if sender.startswith(BSUID_SENDER) and not any(p.kind is Kind.BSUID for p in points):
        points.append(Point(Kind.BSUID, address))
    return WhatsAppSender(address, phone, tuple(points))


def pick(points: Sequence[Point], owned: dict[Point, int]) -> int | None:
    """The lead id of the strongest owned point (BSUID, WhatsApp id, then phone)."""
    order = (Kind.BSUID, Kind.WHATSAPP, Kind.PHONE)
    for kind in order:
        for point in points:
            if point.kind is kind and point in owned:
                return owned[point]
    return None
