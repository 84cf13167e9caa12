"""Where a live conversation stream stands: what the browser has been sent, carried in each
event's id so that a reconnect (``Last-Event-ID``) resumes without a gap or a repeat.

A position has three parts:

- ``message_id``: the last message sent (one lead's messages commit in id order:
  :mod:`scheduler.store.conversation_feed`);
- ``status_at``: up to when the delivery statuses of the lead's outbox rows were read.
  Rows are read back from :data:`SLACK` before it (a row written by another process, whose
  clock or commit lags, is not skipped)...
- ``seen``: ...and the status label the browser has for each row that changed within
  :data:`SLACK` of ``status_at``, so that reading back repeats nothing.

Encoded as ``<message id>.<status_at in µs>[.<row>:<label>,…]`` (digits, letters, ``.:,``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from scheduler.store.conversation_feed import FeedDelivery
from scheduler.store.models import OutboxState

SLACK = timedelta(seconds=10)
SEEN_KEPT = 40  # rows remembered in an event id at most (the newest changes)
_LABEL = re.compile(r"^[a-z]{1,12}$")
_PAIR = r"\d{1,18}:[a-z]{1,12}"
_POSITION = re.compile(rf"^(\d{{1,18}})\.(\d{{1,17}})(?:\.({_PAIR}(?:,{_PAIR}){{0,63}}))?$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DELIVERY_STATUSES = frozenset({"sent", "delivered", "read", "played", "failed"})


def delivery_label(delivery: FeedDelivery) -> str:
    """What the console shows of an outbox row: ``queued``, ``retrying``, ``sending``,
    ``sent``, ``delivered``, ``read``, ``played``, ``failed`` or ``uncertain``."""
    if delivery.state == OutboxState.SENT.value:
        status = delivery.delivery_status
        return status if status in DELIVERY_STATUSES else "sent"
    if delivery.state == OutboxState.PENDING.value:
        return "retrying" if delivery.error else "queued"
    return delivery.state if _LABEL.match(delivery.state) else "unknown"


@dataclass(slots=True)
class FeedPosition:
    """What the browser has of one conversation (see the module docstring)."""

    message_id: int
    status_at: datetime
    seen: dict[int, tuple[str, datetime]] = field(default_factory=dict)

    def encode(self) -> str:
        """The event id carrying this position."""
        micros = (self.status_at - _EPOCH) // timedelta(microseconds=1)
        newest = sorted(self.seen.items(), key=lambda item: (item[1][1], item[0]))[-SEEN_KEPT:]
        seen = ",".join(f"{row}:{label}" for row, (label, _) in newest)
        return f"{self.message_id}.{micros}" + (f".{seen}" if seen else "")

    @classmethod
    def decode(cls, raw: str | None) -> FeedPosition | None:
        """The position an event id carries; None when it is not one (then the stream
        starts from now)."""
        found = _POSITION.match(raw or "")
        if found is None:
            return None
        try:
            status_at = _EPOCH + timedelta(microseconds=int(found.group(2)))
        except OverflowError:  # past the year 9999: not one of ours
            return None
        seen: dict[int, tuple[str, datetime]] = {}
        for pair in filter(None, (found.group(3) or "").split(",")):
            row, label = pair.split(":")
            seen[int(row)] = (label, status_at)
        return cls(int(found.group(1)), status_at, seen)

    def since(self) -> datetime:
        """Read outbox rows changed after this."""
        return self.status_at - SLACK

    def knows(self, delivery: FeedDelivery) -> bool:
        """Whether the browser already shows ``delivery`` as it is now."""
        seen = self.seen.get(delivery.outbox_id)
        return seen is not None and seen[0] == delivery_label(delivery)

    def saw_message(self, message_id: int) -> None:
        """The browser has the messages up to ``message_id``."""
        self.message_id = max(self.message_id, message_id)

    def saw(self, delivery: FeedDelivery) -> None:
        """The browser shows ``delivery`` as it is now (its status read, or rendered)."""
        self.seen[delivery.outbox_id] = (delivery_label(delivery), delivery.changed_at)
        self.status_at = max(self.status_at, delivery.changed_at)

    def forget_old(self) -> None:
        """Drop rows whose change is older than the read-back reaches (the window moved)."""
        horizon = self.since()
        self.seen = {row: s for row, s in self.seen.items() if s[1] > horizon}
