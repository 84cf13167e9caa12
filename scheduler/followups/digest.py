"""The rep's daily digest of reactivation drafts: who is due, what it lists, and why.

Pure decisions plus one read: :func:`due_date` says whether a rep's digest is due at ``now``
(their local ``hour`` has come today) and for which local date; :func:`collect` reads the
drafts of the reactivation sequences waiting on the rep's leads, each with a reason a rep
reads at a glance ("went quiet after the budget question, 74 days ago"). The digest's key,
``digest:rep:<id>:<local date>``, makes it one email per rep per local day however many
processes run the job. Rendering and the signed links are the service's (``bot.http.digest``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.followups.cadence import Cadence
from scheduler.store import Session
from scheduler.store.reactivation import (
    DigestRep,
    WaitingDraft,
    open_questions,
    stage_event_times,
    waiting_for_rep,
)


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One draft in the digest: whose, why, and the draft itself."""

    touch_id: int
    lead_id: int
    who: str  # name (company), else a contact, else "lead <id>"
    reason: str
    channel: str
    subject: str
    draft: str


@dataclass(slots=True)
class Digest:
    """A rep's digest for one local date; ``total`` counts drafts past the listed ones."""

    rep: DigestRep
    local_date: date
    items: list[DigestItem] = field(default_factory=list)
    total: int = 0

    @property
    def key(self) -> str:
        """The outbox key: one digest per rep per local date."""
        return digest_key(self.rep.id, self.local_date)


def digest_key(rep_id: int, local_date: date) -> str:
    """``digest:rep:<id>:<YYYY-MM-DD>``."""
    return f"digest:rep:{rep_id}:{local_date.isoformat()}"


def reactivation_sequences(cadence: Cadence) -> list[str]:
    """The sequences started by dormancy (``start_when_dormant_for``)."""
    return [n for n, s in cadence.sequences.items() if s.start_when_dormant_for is not None]


def rep_zone(name: str | None, default: str) -> ZoneInfo:
    """The rep's time zone; ``default`` when unset or no longer known to this system."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def due_date(zone: ZoneInfo, hour: int, now: datetime) -> date | None:
    """The local date whose digest is due at ``now``, or None before ``hour`` local time."""
    local = now.astimezone(zone)
    return local.date() if local.hour >= hour else None


def quiet_reason(open_question: str | None, quiet_since: datetime | None, now: datetime) -> str:
    """ "went quiet after the budget question, 74 days ago" (parts left out when unknown)."""
    what = f"after the {open_question.replace('_', ' ')} question" if open_question else ""
    text = f"went quiet {what}".rstrip()
    if quiet_since is not None:
        days = max((now - quiet_since).days, 0)
        text += f", {days} day{'s' if days != 1 else ''} ago"
    return text


async def collect(
    session: Session,
    rep: DigestRep,
    sequences: Collection[str],
    *,
    local_date: date,
    now: datetime,
    limit: int,
) -> Digest:
    """The rep's digest: up to ``limit`` drafts awaiting approval on their leads."""
    drafts, total = await waiting_for_rep(session, rep.id, sequences, limit=limit)
    questions = await open_questions(session, (d.lead_id for d in drafts))
    dormant_at = await stage_event_times(session, (d.cycle for d in drafts))
    items = []
    for d in drafts:
        # Quiet since their last message; a lead who never wrote, since it went dormant.
        since = d.last_inbound_at or dormant_at.get(d.cycle)
        items.append(
            DigestItem(
                touch_id=d.touch_id,
                lead_id=d.lead_id,
                who=label(d),
                reason=quiet_reason(questions.get(d.lead_id), since, now),
                channel=str(d.meta.get("channel") or d.channel),
                subject=str(d.meta.get("subject") or ""),
                draft=d.draft,
            )
        )
    return Digest(rep=rep, local_date=local_date, items=items, total=total)


def label(draft: WaitingDraft) -> str:
    """How a rep recognizes the lead (as in their other notifications)."""
    name = draft.name or draft.email or draft.phone or f"lead {draft.lead_id}"
    return f"{name} ({draft.company})" if draft.company else name
