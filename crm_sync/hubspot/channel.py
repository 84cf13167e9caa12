"""The HubSpot outbox channel: each row says "sync lead N (because of fact F)".

A row's payload names the lead and the fact (:mod:`crm_sync.hubspot.subscriber`); the
channel reads the lead's *current* state when it sends (a late or retried row pushes what is
true now) and makes every write idempotent, so a retry after any failure, a timeout
included, never creates a twin:

1. **Contact**: batch upsert keyed on the email (``idProperty=email``: a contact a rep
   already made for that address is the one updated). A lead with no email is looked up
   by phone once (search, 5 numbers a request) and otherwise upserted keyed on our lead id
   (:data:`~crm_sync.hubspot.records.LEAD_ID_PROPERTY`, a unique-value custom property).
2. **Deal**: batch upsert keyed on our lead id: one deal per lead, its stage from the stage
   map, its owner the HubSpot owner with the owning rep's email (owners API, cached).
3. **Association** deal ↔ contact (default type; associating twice changes nothing), made
   when the pair is new to us.
4. **Notes** (qualification summary, email and other lead notes, conversation summaries,
   event notes) on contact and deal, each pushed once (:mod:`crm_sync.hubspot.notes`).

Rows are sent in batches (``send_batch``): a batch of up to 100 leads costs about four
requests, not four per lead, which is what lets a backfill run at HubSpot's rate limit. A
failed request fails only the leads in it; each row's outcome is its lead's.

An erased lead is never pushed (its rows fail with "lead erased"; an erasure also cancels
pending rows). What HubSpot already holds about the person is not deleted from here: the
operator erases the contact in HubSpot (README "HubSpot").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from crm_sync.hubspot.client import BATCH, HubSpotClient
from crm_sync.hubspot.notes import LeadJob, call, push_notes
from crm_sync.hubspot.records import (
    LEAD_ID_PROPERTY,
    NoteToPush,
    contact_properties,
    deal_properties,
    event_note,
)
from crm_sync.hubspot.stage_map import StageMap
from scheduler.delivery.channels import NotSent, Receipt, SendOutcome
from scheduler.store import Sessions, hubspot_sync
from scheduler.store.models import utcnow

CHANNEL = "hubspot"
"""The outbox channel name of HubSpot syncs."""
_PHONE_GROUPS = 5  # filter groups per search request (HubSpot's limit)


class HubSpotChannel:
    """A :class:`scheduler.delivery.channels.BatchChannel` syncing leads to HubSpot."""

    name = CHANNEL

    def __init__(
        self,
        client: HubSpotClient,
        sessions: Sessions,
        *,
        stages: StageMap,
        pipeline: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.clock = clock
        self.client = client
        self.sessions = sessions
        self.stages = stages
        self.pipeline = pipeline

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Sync the row's lead; raise :class:`NotSent` when it did not fully go through."""
        [outcome] = await self.send_batch([(recipient, payload)], concurrency=1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def send_batch(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], *, concurrency: int
    ) -> list[SendOutcome]:
        """Sync the leads of ``items`` together; one outcome per item (its lead's)."""
        now = self.clock()
        wanted: dict[int, list[Mapping[str, Any]]] = {}
        outcomes: list[SendOutcome | None] = [None] * len(items)
        for i, (_, payload) in enumerate(items):
            lead_id = payload.get("lead_id")
            if not isinstance(lead_id, int) or isinstance(lead_id, bool):
                outcomes[i] = NotSent(
                    "the row names no lead", code="bad_payload", is_transient=False
                )
            else:
                wanted.setdefault(lead_id, []).append(payload)
        async with self.sessions() as session:
            leads = await hubspot_sync.snapshots(session, wanted)
        jobs: dict[int, LeadJob] = {}
        for lead_id, payloads in wanted.items():
            lead = leads.get(lead_id)
            if lead is None or lead.erased:
                continue
            job = jobs[lead_id] = LeadJob(lead)
            for payload in payloads:
                job.conversation |= bool(payload.get("conversation"))
                job.facts.append(str(payload.get("fact", "")))
                job.event_notes += _event_notes(lead_id, payload)
        await self._sync(list(jobs.values()), now)
        for i, (_, payload) in enumerate(items):
            if outcomes[i] is not None:
                continue
            lead_id = payload["lead_id"]
            done = jobs.get(lead_id)
            if done is None:
                gone = "lead erased" if lead_id in leads else "lead not found"
                outcomes[i] = NotSent(f"lead {lead_id}: {gone}", code="gone", is_transient=False)
            elif done.error is not None:
                outcomes[i] = done.error
            else:
                outcomes[i] = Receipt(external_id=f"hubspot:deal:{done.deal_id}")
        return [o for o in outcomes if o is not None]

    async def _sync(self, jobs: list[LeadJob], now: datetime) -> None:
        for first in range(0, len(jobs), BATCH):
            chunk = jobs[first : first + BATCH]
            await self._contacts(chunk)
            await self._deals([j for j in chunk if j.error is None])
            done = [j for j in chunk if j.error is None]
            async with self.sessions.begin() as session:
                links = [(j.lead.id, j.contact_id, j.deal_id) for j in done]
                await hubspot_sync.record_links(session, links, now)
            await push_notes(self.client, self.sessions, done, now)

    # -- contacts, deals, associations ---------------------------------------------------

    async def _contacts(self, jobs: list[LeadJob]) -> None:
        # A lead we linked before is upserted by our lead id (set on its contact the first
        # time): a changed email then updates that contact instead of making a new one.
        by_email = [j for j in jobs if j.lead.email and not j.lead.contact_id]
        rest = [j for j in jobs if not j.lead.email or j.lead.contact_id]
        await self._upsert("contacts", by_email, "email", lambda j: (j.lead.email or "").lower())
        unlinked = [j for j in rest if j.lead.phone and not j.lead.contact_id]
        found = await self._by_phone(unlinked)
        matched = [j for j in rest if j.lead.id in found]
        if matched:
            inputs = [
                {"id": found[j.lead.id], "properties": contact_properties(j.lead)} for j in matched
            ]
            await self._call(matched, self.client.batch_update("contacts", inputs))
            for j in matched:
                if j.error is None:
                    j.contact_id = found[j.lead.id]
        keyed = [j for j in rest if j.lead.id not in found and j.error is None]
        await self._upsert("contacts", keyed, LEAD_ID_PROPERTY, lambda j: str(j.lead.id))

    async def _by_phone(self, jobs: list[LeadJob]) -> dict[int, str]:
        """Contacts a rep already made for these leads' phones: lead id → contact id."""
        found: dict[int, str] = {}
        for first in range(0, len(jobs), _PHONE_GROUPS):
            chunk = jobs[first : first + _PHONE_GROUPS]
            groups = [
                [{"propertyName": "phone", "operator": "EQ", "value": j.lead.phone or ""}]
                for j in chunk
            ]
            results = await self._call(chunk, self.client.search("contacts", groups, ["phone"]))
            for result in results or []:
                phone = (result.get("properties") or {}).get("phone")
                for j in chunk:
                    if j.lead.phone == phone and j.lead.id not in found:
                        found[j.lead.id] = str(result["id"])
        return found

    async def _deals(self, jobs: list[LeadJob]) -> None:
        owners: dict[str, str | None] = {}
        for j in jobs:
            email = j.lead.owner_email
            if email and email not in owners:
                # Best effort: a deal without an owner is better than no deal.
                try:
                    owners[email] = await self.client.owner_id(email)
                except NotSent:
                    owners[email] = None

        def properties(j: LeadJob) -> dict[str, str]:
            owner = owners.get(j.lead.owner_email or "")
            return deal_properties(j.lead, self.stages, self.pipeline, owner)

        await self._upsert("deals", jobs, LEAD_ID_PROPERTY, lambda j: str(j.lead.id), properties)
        new_pairs = [
            j
            for j in jobs
            if j.error is None and (j.deal_id, j.contact_id) != (j.lead.deal_id, j.lead.contact_id)
        ]
        if new_pairs:
            pairs = [(str(j.deal_id), str(j.contact_id)) for j in new_pairs]
            await self._call(new_pairs, self.client.associate_default("deals", "contacts", pairs))

    async def _upsert(
        self,
        object_type: str,
        jobs: list[LeadJob],
        id_property: str,
        key: Any,
        properties: Any = None,
    ) -> None:
        """Batch-upsert one object per job keyed on ``id_property`` = ``key(job)``; each
        job gets its object's id (contact or deal) or an error."""
        if not jobs:
            return
        build = properties or (lambda j: contact_properties(j.lead))
        inputs = [{"idProperty": id_property, "id": key(j), "properties": build(j)} for j in jobs]
        results = await self._call(jobs, self.client.batch_upsert(object_type, inputs))
        failed = jobs[0].error if results is None else None
        if failed is not None and not failed.is_transient and len(jobs) > 1:
            # HubSpot refused the batch for what one input holds (a unique value another
            # object has): one request each, so only that lead fails.
            for j in jobs:
                j.error = None
                await self._upsert(object_type, [j], id_property, key, properties)
            return
        if results is None:
            return
        ids = {}
        for result in results:
            value = (result.get("properties") or {}).get(id_property)
            if value is not None:
                ids[str(value).lower()] = str(result["id"])
        for j in jobs:
            object_id = ids.get(str(key(j)).lower())
            if object_id is None:
                j.error = NotSent(f"HubSpot did not upsert the {object_type[:-1]}", code="partial")
            elif object_type == "contacts":
                j.contact_id = object_id
            else:
                j.deal_id = object_id

    # -- notes ---------------------------------------------------------------------------

    async def _call(self, jobs: list[LeadJob], request: Any) -> Any:
        """Await ``request``; when it fails, every job in it fails with that outcome."""
        return await call(jobs, request)

    async def aclose(self) -> None:
        """Close the HTTP client (the app's shutdown)."""
        await self.client.aclose()


def _event_notes(lead_id: int, payload: Mapping[str, Any]) -> list[NoteToPush]:
    note = payload.get("note")
    if not isinstance(note, Mapping) or not isinstance(note.get("lines"), list):
        return []
    try:
        at = datetime.fromisoformat(str(note.get("at")))
    except ValueError:
        at = utcnow()
    lines = [str(line) for line in note["lines"]]
    return [event_note(lead_id, str(payload.get("fact", "")), lines, at)]
