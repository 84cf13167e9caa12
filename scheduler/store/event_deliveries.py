"""Statements of outbound events: the lead facts an event carries, and the deliveries that
ended ``failed`` (the dead letters an operator looks at), also those of the CRM sync and the
ad platform (:func:`failed_syncs`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from scheduler.store.models import Lead, OutboxItem, OutboxState

_CHUNK = 500  # values per IN (…) list


async def lead_facts(session: AsyncSession, lead_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """``lead id → the fields an event shows`` (id, stage, name, email, phone, company,
    source, owner rep id, qualification); an erased lead shows only its id and stage."""
    facts: dict[int, dict[str, Any]] = {}
    for first in range(0, len(lead_ids), _CHUNK):
        rows = await session.execute(
            select(
                Lead.id,
                Lead.stage,
                Lead.name,
                Lead.email,
                Lead.phone,
                Lead.company,
                Lead.source,
                Lead.owner_rep_id,
                Lead.qualification,
                Lead.erased_at,
            ).where(Lead.id.in_(lead_ids[first : first + _CHUNK]))
        )
        for row in rows:
            if row.erased_at is not None:
                facts[row.id] = {"id": row.id, "stage": row.stage}
                continue
            facts[row.id] = {
                "id": row.id,
                "stage": row.stage,
                "name": row.name,
                "email": row.email,
                "phone": row.phone,
                "company": row.company,
                "source": row.source,
                "owner_rep_id": row.owner_rep_id,
                "qualification": row.qualification,
            }
    return facts


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """An event delivery given up on: which event, to which endpoint, why, when."""

    outbox_id: int
    endpoint: str
    url: str
    event_id: str
    event_type: str
    attempts: int
    error: str | None
    failed_at: datetime


async def failed_deliveries(
    session: AsyncSession, channel: str, *, limit: int = 100, before_id: int | None = None
) -> list[FailedDelivery]:
    """The newest ``failed`` rows of ``channel`` (the events channel), newest first;
    ``before_id`` pages on."""
    query = select(OutboxItem).where(
        OutboxItem.channel == channel, OutboxItem.state == OutboxState.FAILED.value
    )
    if before_id is not None:
        query = query.where(OutboxItem.id < before_id)
    rows = await session.scalars(query.order_by(OutboxItem.id.desc()).limit(limit))
    found = []
    for row in rows:
        payload = row.payload or {}
        event = payload.get("event") or {}
        found.append(
            FailedDelivery(
                outbox_id=row.id,
                endpoint=str(payload.get("endpoint", "")),
                url=row.recipient,
                event_id=str(event.get("id", "")),
                event_type=str(event.get("type", "")),
                attempts=row.attempts,
                error=row.error,
                failed_at=row.updated_at,
            )
        )
    return found


_LEAD_IN_KEY = re.compile(r":lead:(\d+):")


@dataclass(frozen=True, slots=True)
class FailedSync:
    """A CRM or ad-platform write given up on (``failed``) or of unknown outcome
    (``uncertain``): its channel, the fact it carried (the row's key), the lead it is about."""

    outbox_id: int
    channel: str
    key: str
    lead_id: int | None
    state: str
    attempts: int
    error: str | None
    at: datetime


async def failed_syncs(
    session: AsyncSession, channels: Sequence[str], *, limit: int = 100
) -> list[FailedSync]:
    """The newest ``failed`` or ``uncertain`` rows of ``channels``, newest first."""
    if not channels:
        return []
    states = (OutboxState.FAILED.value, OutboxState.UNCERTAIN.value)
    rows = await session.scalars(
        select(OutboxItem)
        .where(OutboxItem.channel.in_(channels), OutboxItem.state.in_(states))
        .order_by(OutboxItem.id.desc())
        .limit(limit)
    )
    found = []
    for row in rows:
        lead = _LEAD_IN_KEY.search(row.key)
        found.append(
            FailedSync(
                outbox_id=row.id,
                channel=row.channel,
                key=row.key,
                lead_id=int(lead.group(1)) if lead else None,
                state=row.state,
                attempts=row.attempts,
                error=row.error,
                at=row.updated_at,
            )
        )
    return found
