"""Events → HubSpot sync rows, stored in the transaction of the change they report.

Each event about a lead becomes one outbox row of the ``hubspot`` channel keyed
``hubspot:lead:<id>:<fact>``: the same fact stores one row (at most once per intent), and
the key names the lead, so an erasure finds and cancels it. The row is a trigger ("sync
lead N now, because of F"): the channel reads the lead as it is when it sends. What only the
event knows travels in the payload: whether a conversation summary is due (qualified, a
booking, a hand-off request) and the event's own note (a booking, a cancellation, a
hand-off request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from crm_sync.hubspot.channel import CHANNEL
from scheduler.pipeline.outbound_events import Event, EventKind
from scheduler.store import Session
from scheduler.store.outbox import outbox_row

# Moments where the conversation so far is worth a summary on the deal.
_SUMMARIZE = {EventKind.LEAD_QUALIFIED, EventKind.MEETING_BOOKED, EventKind.HANDOFF_REQUESTED}


def row_key(lead_id: int, fact: str) -> str:
    """The outbox key of lead ``lead_id``'s sync because of ``fact``."""
    return f"{CHANNEL}:lead:{lead_id}:{fact}"


def sync_row(
    lead_id: int, fact: str, at: Any, *, kind: str = "", conversation: bool = False
) -> dict[str, Any]:
    """An outbox row that syncs lead ``lead_id`` (because of ``fact``)."""
    payload: dict[str, Any] = {
        "lead_id": lead_id,
        "fact": fact,
        "kind": kind,
        "conversation": conversation,
        "text": f"HubSpot sync of lead {lead_id} ({kind or fact})",
    }
    return outbox_row(
        key=row_key(lead_id, fact),
        channel=CHANNEL,
        recipient=f"lead:{lead_id}",
        # lead_id stays None on the row: a sync is not a message in the lead's conversation.
        payload=payload,
        now=at,
    )


class HubSpotSubscriber:
    """A :class:`scheduler.pipeline.outbound_events.Subscriber`: one sync row per event
    about a lead."""

    async def outbox_rows(self, session: Session, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The sync rows of ``events`` (events about no lead are not synced)."""
        rows = []
        for event in events:
            if event.lead_id is None:
                continue
            row = sync_row(
                event.lead_id,
                event.fact,
                event.occurred_at,
                kind=event.kind.value,
                conversation=event.kind in _SUMMARIZE,
            )
            lines = event_lines(event.kind, event.data)
            if lines:
                at = event.occurred_at.isoformat()
                row["payload"]["note"] = {"lines": lines, "at": at}
            rows.append(row)
        return rows


def event_lines(kind: EventKind, data: Mapping[str, Any]) -> list[str]:
    """The note an event of ``kind`` carries to HubSpot (none for most kinds)."""
    if kind is EventKind.MEETING_BOOKED:
        when = f"{data.get('start_time')} – {data.get('end_time')} ({data.get('timezone')})"
        return ["Meeting booked (Calendly, via leadbot)", "", when]
    if kind is EventKind.MEETING_CANCELED:
        return ["Meeting canceled (Calendly, via leadbot)", "", f"Reason: {data.get('reason')}"]
    if kind is EventKind.HANDOFF_REQUESTED:
        return [f"The prospect asked for a person on {data.get('channel')} (leadbot)"]
    return []
