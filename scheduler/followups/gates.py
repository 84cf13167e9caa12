"""What the sweeper checks about a lead right before a touch goes out.

A touch was scheduled days ago; since then the lead may have replied, booked, opted out,
been suppressed (bounce, complaint), been closed as won/lost, or been handed to a human.
:func:`load_facts` reads everything needed for a whole batch in a few queries and
:func:`skip_reason` decides; both are used again inside the transaction that enqueues the
send, so a reply that committed before it is always seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from scheduler.errors import TransitionError
from scheduler.pipeline.identity import whatsapp_addresses
from scheduler.pipeline.stages import transition
from scheduler.store import Session, conversations
from scheduler.store.leads import leads_by_ids
from scheduler.store.models import Lead, Stage
from scheduler.store.notes import list_notes
from scheduler.store.suppressions import lookup_forms, normalize_address, stored_among


class BookingLink(Protocol):
    """Builds the lead-tagged booking link from the configured Calendly URL."""

    def __call__(self, base_url: str, *, token: str, name: str | None, email: str | None) -> str:
        """The tagged, prefilled link."""
        ...


NOTES = 5  # newest notes a drafter sees
_FINAL = ("opted out", "suppressed", "replied", "booked", "lead is won", "lead is lost")


@dataclass(slots=True)
class LeadFacts:
    """The parts of a lead that decide whether and how a touch is sent."""

    lead: Lead
    suppressed: set[str] = field(default_factory=set)
    # The lead's WhatsApp address as Meta sends it (a wa_id, or a BSUID), if it wrote there.
    whatsapp: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)
    history: tuple[tuple[str, str], ...] = ()
    # The lead's newest notes (reps', and facts taken from their email), newest first:
    # loaded with the history, for the LLM drafter.
    notes: tuple[str, ...] = ()

    @property
    def tier(self) -> str | None:
        """The qualification tier (hot, warm, cold) when the lead was scored."""
        value = (self.lead.qualification or {}).get("tier")
        return str(value) if value else None

    def address(self, channel: str) -> str | None:
        """Where ``channel`` reaches the lead, unless suppressed or blocked."""
        lead = self.lead
        if channel == "email":
            if not lead.email or lead.email in self.suppressed or lead.email_status:
                return None
            return lead.email
        if channel == "whatsapp":
            target = self.whatsapp or lead.phone
            if not target or lead.phone in self.suppressed or self.whatsapp in self.suppressed:
                return None
            return target
        return None

    def channel_for(self, preferred: str) -> str | None:
        """The step's channel, or the other one when the lead cannot be reached on it (a
        WhatsApp-only lead gets its follow-ups on WhatsApp, an email lead by email).
        While Meta says WhatsApp's 24-hour window is closed, email is preferred."""
        order = [preferred] + [c for c in ("email", "whatsapp") if c != preferred]
        for channel in order:
            if channel == "whatsapp" and self.lead.whatsapp_window_closed_at is not None:
                continue
            if self.address(channel) is not None:
                return channel
        # WhatsApp only: the channel sends the approved template outside the window.
        return "whatsapp" if self.address("whatsapp") is not None else None

    def unreachable_reason(self) -> str:
        """Why :meth:`channel_for` found no channel."""
        lead = self.lead
        if {lead.email, lead.phone} & self.suppressed or lead.email_status:
            return "suppressed"
        return "no address to reach the lead"

    def is_final(self, reason: str) -> bool:
        """Whether ``reason`` ends the lead's whole cadence, not just this touch."""
        return reason.startswith(_FINAL)

    def template_lead(self) -> dict[str, Any]:
        """What templates and prompts see of the lead (no contact details)."""
        lead = self.lead
        first = (lead.name or "").strip().split(" ")[0] or None
        return {
            "id": lead.id,
            "name": lead.name,
            "first_name": first,
            "company": lead.company,
            "role": lead.role,
            "stage": lead.stage,
            "token": lead.token,
            "tier": self.tier,
        }

    def links(self, base: dict[str, str], booking: BookingLink | None = None) -> dict[str, str]:
        """The links a draft may use, the Calendly one tagged with the lead's token so the
        booking webhook finds the lead (``booking`` builds it; the composition root passes
        the service's own builder)."""
        links = dict(base)
        lead = self.lead
        if links.get("calendly") and booking is not None:
            links["calendly"] = booking(
                links["calendly"], token=lead.token, name=lead.name, email=lead.email
            )
        elif links.get("calendly"):
            sep = "&" if "?" in links["calendly"] else "?"
            links["calendly"] += sep + urlencode(
                {"utm_source": "leadbot", "utm_content": self.lead.token}
            )
        return links

    async def mark_contacted(self, session: Session, now: datetime) -> None:
        """The first touch sent moves a new lead to contacted (no-op in any other stage)."""
        if self.lead.stage != Stage.NEW.value:
            return
        try:
            async with session.begin_nested():
                await transition(
                    session,
                    self.lead.id,
                    Stage.CONTACTED,
                    reason="first touch sent",
                    actor="scheduler",
                    now=now,
                    expected_from=Stage.NEW,
                )
            self.lead.stage = Stage.CONTACTED.value
        except TransitionError:
            pass  # someone else moved it meanwhile; their move stands


def skip_reason(facts: LeadFacts, sequence: str, started_at: datetime) -> str | None:
    """Why the touch of ``sequence`` (started at ``started_at``) must not go out, or None."""
    lead = facts.lead
    if lead.opted_out_at is not None:
        return "opted out"
    if lead.stage in (Stage.WON.value, Stage.LOST.value):
        return f"lead is {lead.stage}"
    if lead.last_inbound_at is not None and lead.last_inbound_at > started_at:
        return "replied since the sequence started"
    if lead.booked_at is not None and lead.booked_at > started_at:
        return "booked a call since the sequence started"
    if lead.bot_paused:
        return "bot paused: a human has the conversation"
    return None


async def load_facts(session: Session, lead_ids: set[int], history: int) -> dict[int, LeadFacts]:
    """Facts for every lead in ``lead_ids`` (missing leads are absent), in a few queries;
    with ``history`` > 0 also each lead's last messages (for the LLM drafter)."""
    if not lead_ids:
        return {}
    leads = await leads_by_ids(session, lead_ids)
    facts = {lead.id: LeadFacts(lead) for lead in leads}
    for lead_id, address in await whatsapp_addresses(session, set(facts)):
        facts[lead_id].whatsapp = address
    addresses = {
        normalize_address(a): a
        for f in facts.values()
        for a in (f.lead.email, f.lead.phone, f.whatsapp)
        if a
    }
    if addresses:
        forms = lookup_forms(session, addresses.values())  # erased people's keyed hashes too
        suppressed = {forms[a] for a in await stored_among(session, forms)}
        for f in facts.values():
            f.suppressed = {a for a in (f.lead.email, f.lead.phone, f.whatsapp) if a in suppressed}
    for lead_id, state in await conversations.dialog_states(session, lead_ids):
        slots: dict[str, Any] = (state or {}).get("slots") or {}
        facts[lead_id].answers = {
            k: v.get("value") if isinstance(v, dict) else v for k, v in slots.items()
        }
    if history > 0:
        for lead_id, f in facts.items():
            messages = await conversations.recent_messages(session, lead_id, history)
            f.history = tuple(reversed(messages))
            f.notes = tuple(n.body for n in await list_notes(session, lead_id, limit=NOTES))
    return facts
