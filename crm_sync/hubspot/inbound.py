"""HubSpot webhook events → our stage machine (deal stage changes made in HubSpot).

A delivery is a JSON list of events (``eventId``, ``subscriptionType``, ``objectId``,
``propertyName``, ``propertyValue``, ``occurredAt``, …). Only ``deal.propertyChange`` of
``dealstage`` matters; each event is applied once (``processed_events``, source
``hubspot``, key the ``eventId``: HubSpot retries deliveries), in the caller's transaction:

- the deal's lead is found by the deal id we recorded when we upserted it (an erased
  lead's deal is ignored);
- the HubSpot stage maps back to our stages (:meth:`StageMap.ours`); the lead already in
  one of them is left alone (this is also how the echo of our own sync ends);
- otherwise the first of them the lead may move to is applied through
  :func:`scheduler.pipeline.stages.transition` (actor ``hubspot``; a move to lost gets the
  reason "HubSpot: deal … moved to …"); a lead that moved while we applied it (a first
  touch, a rep) is judged again on its new stage;
- a move the stage machine does not allow (or a stage not in the map) is *recorded, not
  applied*: a note on the lead's timeline says what HubSpot did and why we did not follow,
  and a sync row is stored that pushes our stage back to the deal.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_sync.hubspot.stage_map import StageMap
from crm_sync.hubspot.subscriber import sync_row
from scheduler.errors import StaleStageError, TransitionError
from scheduler.pipeline.stages import ALLOWED_MOVES, transition
from scheduler.store import Session, events, hubspot_sync
from scheduler.store.leads import stage_and_version
from scheduler.store.models import Stage
from scheduler.store.notes import add_note
from scheduler.store.outbox import enqueue_many

SOURCE = "hubspot"
STALE_TRIES = 3  # a lead that moves under us this often in one delivery is refused
ACTOR = "hubspot"


@dataclass(frozen=True, slots=True)
class Applied:
    """What became of one event: ``status`` is ``moved``, ``unchanged``, ``illegal``,
    ``duplicate``, ``unknown_deal`` or ``ignored``."""

    event_id: str
    status: str
    lead_id: int | None = None
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        """The event's line in the webhook's answer."""
        found = {"eventId": self.event_id, "status": self.status, "lead_id": self.lead_id}
        return found | ({"detail": self.detail} if self.detail else {})


async def apply_events(
    session: Session, items: Sequence[Any], stages: StageMap, now: datetime
) -> list[Applied]:
    """Apply a delivery's events in the caller's transaction; one outcome each."""
    return [await _apply(session, item, stages, now) for item in items]


async def _apply(session: Session, item: Any, stages: StageMap, now: datetime) -> Applied:
    if not isinstance(item, Mapping) or item.get("eventId") is None:
        return Applied("", "ignored", detail="not an event (no eventId)")
    event_id = str(item["eventId"])
    if not await events.first_time(session, SOURCE, event_id, now):
        return Applied(event_id, "duplicate")
    if item.get("subscriptionType") != "deal.propertyChange" or (
        item.get("propertyName") != "dealstage"
    ):
        return Applied(event_id, "ignored", detail=f"{item.get('subscriptionType')}")
    deal_id, value = str(item.get("objectId", "")), str(item.get("propertyValue", ""))
    found = await hubspot_sync.lead_of_deal(session, deal_id)
    if found is None:
        return Applied(event_id, "unknown_deal", detail=f"deal {deal_id} is not one of ours")
    lead_id, erased = found
    if erased:  # the person is forgotten: nothing HubSpot says about them changes that
        return Applied(event_id, "ignored", lead_id, detail="the lead was erased")
    refuse = functools.partial(
        _refuse, session, event_id=event_id, lead_id=lead_id, deal_id=deal_id, value=value, now=now
    )
    candidates = stages.ours(value)
    for _ in range(STALE_TRIES):
        current = await stage_and_version(session, lead_id)
        if current is None:
            return Applied(event_id, "unknown_deal", lead_id)
        stage = Stage(current[0])
        if stage in candidates:
            return Applied(event_id, "unchanged", lead_id)
        target = next((c for c in candidates if c in ALLOWED_MOVES[stage]), None)
        if target is None:
            if not candidates:
                return await refuse(why=f"HubSpot stage {value!r} is not in the stage map")
            return await refuse(why=f"{stage} cannot move to {' or '.join(candidates)}")
        reason = f"HubSpot: deal {deal_id} moved to {value}"
        try:
            await transition(
                session, lead_id, target, reason=reason, actor=ACTOR, now=now, current=current
            )
        except StaleStageError:
            continue  # the lead moved meanwhile (a first touch, a rep): judge it again
        except TransitionError as exc:
            return await refuse(why=str(exc))
        return Applied(event_id, "moved", lead_id, detail=f"{stage} -> {target}")
    return await refuse(why=f"the lead kept moving ({STALE_TRIES} tries)")


async def _refuse(
    session: Session,
    *,
    event_id: str,
    lead_id: int,
    deal_id: str,
    value: str,
    why: str,
    now: datetime,
) -> Applied:
    """Record a move we do not follow, and push our stage back to the deal."""
    body = f"HubSpot moved deal {deal_id} to {value!r}; not applied: {why}."
    await add_note(session, lead_id, kind="note", author=ACTOR, body=body, now=now)
    await enqueue_many(session, [sync_row(lead_id, f"revert:{event_id}", now, kind="revert")])
    return Applied(event_id, "illegal", lead_id, detail=why)
