"""A lead as HubSpot records: contact and deal properties, and the notes it should carry.

Pure: everything here is computed from a :class:`~scheduler.store.hubspot_sync.SyncLead`
(and the conversation, for a summary). Our lead id goes on the contact and the deal as the
custom property :data:`LEAD_ID_PROPERTY` (a unique-value property, created once by the
operator: README "HubSpot"), which is what makes every upsert idempotent. Each note has a
deterministic key (what it is about: ``qualification:<digest>``, ``note:<lead note id>``,
``event:<fact>``) and carries a marker token (:func:`marker`) in its body, so a note whose
create had an unknown outcome can be found again instead of created twice.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_sync.hubspot.stage_map import StageMap
from scheduler.store.hubspot_sync import SyncLead

LEAD_ID_PROPERTY = "leadbot_lead_id"
MAX_NOTE_BODY = 60_000  # HubSpot takes 65,536 characters; room for the marker and markup
MAX_NOTE_KEY = 120
_KIND_LABELS = {"note": "Note", "email": "Email note", "form": "Form submission"}


@dataclass(frozen=True, slots=True)
class NoteToPush:
    """One note to push: its key, its HTML body (marker included) and its time."""

    key: str
    body: str
    at: datetime


def contact_properties(lead: SyncLead) -> dict[str, str]:
    """The contact's properties (only those we know: an empty string would clear one a
    rep set in HubSpot)."""
    first, _, last = (lead.name or "").strip().partition(" ")
    values = {
        "email": lead.email,
        "firstname": first,
        "lastname": last.strip(),
        "phone": lead.phone,
        "company": lead.company,
        "jobtitle": lead.role,
        LEAD_ID_PROPERTY: str(lead.id),
    }
    return {k: v for k, v in values.items() if v}


def deal_properties(
    lead: SyncLead, stages: StageMap, pipeline: str, owner_id: str | None
) -> dict[str, str]:
    """The deal's properties: its name, pipeline and mapped stage, owner when known."""
    who = lead.company or lead.name or lead.email or lead.phone or "lead"
    values = {
        "dealname": f"{who} (leadbot #{lead.id})",
        "pipeline": pipeline,
        "dealstage": stages.hubspot(lead.stage),
        LEAD_ID_PROPERTY: str(lead.id),
    }
    if owner_id:
        values["hubspot_owner_id"] = owner_id
    return values


def marker(lead_id: int, key: str) -> str:
    """The token that identifies the note ``key`` of ``lead_id`` in its body (one word, so
    HubSpot's ``CONTAINS_TOKEN`` search finds it)."""
    digest = hashlib.sha256(f"{lead_id}:{key}".encode()).hexdigest()[:16]
    return f"leadbot{lead_id}n{digest}"


def lead_notes(
    lead: SyncLead, *, conversation: Sequence[tuple[str, str, datetime]] = (), fact: str = ""
) -> list[NoteToPush]:
    """The notes ``lead`` should carry: the qualification summary (with the prospect's own
    words as evidence), each lead note (email notes, forms, what reps wrote) and, when
    ``conversation`` is given, a conversation summary for ``fact``."""
    notes: list[NoteToPush] = []
    qualification = lead.qualification or {}
    if qualification.get("decision"):
        canonical = json.dumps(qualification, sort_keys=True, default=str)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:12]
        lines = qualification_lines(qualification)
        notes.append(_note(lead.id, f"qualification:{digest}", lines, lead.created_at))
    for note_id, kind, body, at, data in lead.notes:
        title = _KIND_LABELS.get(kind, kind)
        text = email_note_lines(data) if kind == "email" and data else [body]
        notes.append(_note(lead.id, f"note:{note_id}", [f"{title} (leadbot)", "", *text], at))
    if conversation:
        lines = ["Conversation summary (leadbot)", ""]
        for direction, body, _at in conversation:
            who = "Prospect" if direction == "in" else "Bot"
            lines.append(f"{who}: {body}")
        notes.append(_note(lead.id, f"conversation:{fact}", lines, conversation[-1][2]))
    return notes


def email_note_lines(data: Mapping[str, Any]) -> list[str]:
    """An email note's structured fields as lines (``scheduler.intake.email_note``): the
    summary, then each field the reading found, with the prospect's own words."""
    lines = [str(data.get("summary") or "")]
    for label, key in (("Budget", "budget"), ("Timeline", "timeline")):
        fact = data.get(key)
        if isinstance(fact, Mapping) and fact.get("text"):
            lines.append(f"{label}: {fact['text']} (\u201c{fact.get('evidence', '')}\u201d)")
    if data.get("next_step"):
        lines.append(f"Next step: {data['next_step']}")
    objections = [o for o in data.get("objections") or [] if isinstance(o, Mapping)]
    if objections:
        said = "; ".join(
            f"{o.get('kind')}: \u201c{o.get('evidence', '')}\u201d" for o in objections
        )
        lines.append(f"Objections: {said}")
    if data.get("sentiment"):
        lines.append(f"Sentiment: {data['sentiment']}")
    return lines


def event_note(lead_id: int, fact: str, lines: Sequence[str], at: datetime) -> NoteToPush:
    """A note about one event (a booking, a hand-off request), keyed by the event's fact."""
    return _note(lead_id, f"event:{fact}", lines, at)


def qualification_lines(qualification: Mapping[str, Any]) -> list[str]:
    """The qualification summary: the decision and scores, the reasons, each answer with the
    prospect's words it came from."""
    lines = [
        "Qualification (leadbot)",
        "",
        f"Decision: {qualification.get('decision')} (tier {qualification.get('tier')}, "
        f"fit {qualification.get('fit_score')}, intent {qualification.get('intent_score')})",
    ]
    lines += [f"- {reason}" for reason in qualification.get("reasons") or []]
    slots = qualification.get("slots") or {}
    if isinstance(slots, Mapping) and slots:
        lines += ["", "Answers:"]
        for name, slot in slots.items():
            lines.append(f"- {name}: {_slot(slot)}")
    return lines


def _slot(slot: Any) -> str:
    if not isinstance(slot, Mapping):
        return str(slot)
    if slot.get("unknown"):
        return "doesn't know"
    value, evidence = slot.get("value"), slot.get("evidence")
    return f'{value} (evidence: "{evidence}")' if evidence else str(value)


def _note(lead_id: int, key: str, lines: Sequence[str], at: datetime) -> NoteToPush:
    if len(key) > MAX_NOTE_KEY:  # hubspot_notes.note_key: long facts keep their identity
        key = key[:40] + "#" + hashlib.sha256(key.encode()).hexdigest()[:32]
    text = "\n".join(lines)[:MAX_NOTE_BODY]
    body = html.escape(text).replace("\n", "<br>")
    return NoteToPush(key, f"{body}<br><br>leadbot ref {marker(lead_id, key)}", at)
