"""HubSpot notes of a lead: pushed once each, however often the sync is tried.

Each note has a deterministic key (:mod:`crm_sync.hubspot.records`). It is marked in
``hubspot_notes`` before its create request and gets HubSpot's id after, created with its
associations to the contact (202) and the deal (214), up to 100 a request. A note already
created is never sent again; one whose create had an unknown outcome (a timeout, a lost
answer, a crash) is first searched by its marker token and created only when not found, and
not before :data:`SEARCH_LAG` has passed since the first try (search is eventually
consistent: a note created a second ago may not be found yet). A create that surely did not
happen (held back by the rate limit, a 429) drops its mark, so its retry needs no search.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from crm_sync.hubspot.client import BATCH, HubSpotClient
from crm_sync.hubspot.records import NoteToPush, lead_notes, marker
from scheduler.delivery.channels import NotSent
from scheduler.store import Sessions, hubspot_sync
from scheduler.store.hubspot_sync import SyncLead

SEARCH_LAG = timedelta(seconds=30)
NOTE_TO_CONTACT, NOTE_TO_DEAL = 202, 214
T = TypeVar("T")


@dataclass(slots=True, eq=False)
class LeadJob:
    """One lead of a sync batch: what to push, the HubSpot ids found, how it went."""

    lead: SyncLead
    conversation: bool = False
    facts: list[str] = field(default_factory=list)
    event_notes: list[NoteToPush] = field(default_factory=list)
    contact_id: str | None = None
    deal_id: str | None = None
    error: NotSent | None = None


async def call(jobs: list[LeadJob], request: Awaitable[T]) -> T | None:
    """Await ``request``; when it fails, every job in it fails with that outcome (None)."""
    try:
        return await request
    except NotSent as exc:
        for j in jobs:
            j.error = j.error or exc
        return None


async def push_notes(
    client: HubSpotClient, sessions: Sessions, jobs: list[LeadJob], now: datetime
) -> None:
    """Create the notes ``jobs``' leads should carry and HubSpot does not have yet."""
    async with sessions() as session:
        pushed = await hubspot_sync.pushed_notes(session, [j.lead.id for j in jobs])
        talks = {
            j.lead.id: await hubspot_sync.conversation(session, j.lead.id)
            for j in jobs
            if j.conversation
        }
    wanted: list[tuple[LeadJob, NoteToPush]] = []
    for j in jobs:
        fact = next((f for f in j.facts if f), "sync")
        notes = lead_notes(j.lead, conversation=talks.get(j.lead.id, []), fact=fact)
        for note in notes + j.event_notes:
            record = pushed.get((j.lead.id, note.key))
            if record is None or record.hubspot_id is None:
                wanted.append((j, note))
    if not wanted:
        return
    # Mark before creating: a crash or timeout after the create leaves the mark, and the
    # next try reconciles by marker instead of creating blindly.
    started: dict[tuple[int, str], datetime] = {}
    async with sessions.begin() as session:
        for j in jobs:
            keys = [n.key for jj, n in wanted if jj is j]
            marks = await hubspot_sync.start_notes(session, j.lead.id, keys, now)
            started.update({(j.lead.id, k): m.started_at for k, m in marks.items()})
    create = [(j, n) for j, n in wanted if started[(j.lead.id, n.key)] == now]
    retried = [(j, n) for j, n in wanted if started[(j.lead.id, n.key)] != now]
    created = await _reconcile(client, retried)
    for j, note in retried:
        if (j.lead.id, note.key) in created:
            continue
        if now - started[(j.lead.id, note.key)] < SEARCH_LAG:
            j.error = j.error or NotSent(
                "an earlier create of a note may not be searchable yet", retry_after=30.0
            )
            continue
        create.append((j, note))
    unsent: list[tuple[int, str]] = []
    for first in range(0, len(create), BATCH):
        chunk = create[first : first + BATCH]
        inputs = [_note_input(j, n) for j, n in chunk]
        try:
            results = await client.batch_create("notes", inputs)
        except NotSent as exc:
            results = []
            for j, note in chunk:
                j.error = j.error or exc
                if not exc.attempted:  # held back or throttled: surely not created
                    unsent.append((j.lead.id, note.key))
        by_marker = {}
        for result in results:
            body = str((result.get("properties") or {}).get("hs_note_body", ""))
            by_marker[body.rsplit(" ", 1)[-1]] = str(result["id"])
        for j, note in chunk:
            note_id = by_marker.get(marker(j.lead.id, note.key))
            if note_id is not None:
                created[(j.lead.id, note.key)] = note_id
            elif j.error is None:
                j.error = NotSent("HubSpot did not create a note", code="partial")
    async with sessions.begin() as session:
        done = [(lead_id, key, note_id) for (lead_id, key), note_id in created.items()]
        await hubspot_sync.finish_notes(session, done)
        await hubspot_sync.unmark_notes(session, unsent)


async def _reconcile(
    client: HubSpotClient, notes: list[tuple[LeadJob, NoteToPush]]
) -> dict[tuple[int, str], str]:
    """Notes whose earlier create had an unknown outcome, found by marker."""
    found: dict[tuple[int, str], str] = {}
    for j, note in notes:
        token = marker(j.lead.id, note.key)
        where = {"propertyName": "hs_note_body", "operator": "CONTAINS_TOKEN", "value": token}
        request = client.search("notes", [[where]], ["hs_note_body"])
        results = await call([j], request)
        if results:
            found[(j.lead.id, note.key)] = str(results[0]["id"])
    return found


def _note_input(job: LeadJob, note: NoteToPush) -> dict[str, Any]:
    associations = [
        _association(job.contact_id, NOTE_TO_CONTACT),
        _association(job.deal_id, NOTE_TO_DEAL),
    ]
    return {
        "properties": {"hs_timestamp": _iso(note.at), "hs_note_body": note.body},
        "associations": [a for a in associations if a is not None],
    }


def _association(object_id: str | None, type_id: int) -> dict[str, Any] | None:
    if object_id is None:
        return None
    types = [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]
    return {"to": {"id": object_id}, "types": types}


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
