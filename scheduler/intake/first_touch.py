"""Workflow 2 in the stage store: enrich, qualify, then start the lead's first touch.

:meth:`FirstTouch.process` is idempotent and safe to run twice at once (the request's
background task and the safety job may both see a lead): the slow parts (a provider call,
an LLM) run outside any transaction, and the result is stored with a conditional
``UPDATE … WHERE qualification IS NULL`` whose row count decides who starts the sequence;
``start_sequence`` is idempotent on its own too. The tier decides:

- **warm**: the ``new_lead`` sequence starts; its T+0 step is due at once and the sweeper
  sends it (the one sending path). A lead that is cold only for lack of answers (nothing
  but a name and an email) is treated as warm: see :func:`_too_little_known`;
- **hot**: the same sequence; the sweeper holds the T+0 draft for a rep's approval
  (the step says ``approval: hot``);
- **cold**: nothing, or the ``nurture`` sequence (``LEADBOT_COLD_LEADS``). A disposable
  address is never written to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from scheduler.followups.cadence import Cadence
from scheduler.followups.touches import start_sequence
from scheduler.intake.email_qualify import EmailQualifier
from scheduler.intake.enrichment import EnrichmentProvider, enrich
from scheduler.pipeline.leads import form_submissions
from scheduler.store import Session, Sessions
from scheduler.store import leads as lead_store
from scheduler.store.models import Stage, Touch
from scheduler.store.touches import awaiting_approval_unlinked

log = logging.getLogger("leadbot.first_touch")

ColdPolicy = Literal["ignore", "nurture"]
Action = Literal["auto_reply", "approval", "nurture", "none"]


@dataclass(frozen=True, slots=True)
class FirstTouchConfig:
    """Which sequences the flow starts and which new leads it looks at."""

    cold_leads: ColdPolicy = "ignore"
    sequence: str = "new_lead"
    nurture_sequence: str = "nurture"
    # Creation actors (the stage_events row of a new lead) whose leads get a first touch:
    # "intake" (POST /api/leads); "import" too with LEADBOT_IMPORT_FIRST_TOUCH.
    actors: tuple[str, ...] = ("intake",)
    # The safety job ignores leads older than this (e.g. a database from before the flow).
    max_age: timedelta = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class FirstTouchOutcome:
    """What processing one lead decided; ``started`` counts the touches inserted."""

    lead_id: int
    tier: str
    action: Action
    sequence: str | None
    started: int


def decide(
    qualification: dict[str, Any], enrichment: dict[str, Any], config: FirstTouchConfig
) -> tuple[Action, str | None]:
    """The action and the sequence to start for a scored lead."""
    tier = qualification.get("tier")
    if tier == "hot":
        return "approval", config.sequence
    if tier == "warm" or (tier == "cold" and _too_little_known(qualification, enrichment)):
        return "auto_reply", config.sequence
    if config.cold_leads == "nurture" and not enrichment.get("disposable"):
        return "nurture", config.nurture_sequence
    return "none", None


def _too_little_known(qualification: dict[str, Any], enrichment: dict[str, Any]) -> bool:
    """A plain form lead (a name and an email) scores cold only because nothing is known
    yet. Calling it cold would leave most inbound leads without the T+0 reply the playbook
    promises, so cold needs evidence: a hard disqualifier, a throwaway address, or at most
    one unknown answer. Otherwise the first reply is how we learn the rest."""
    if qualification.get("disqualifiers") or enrichment.get("disposable"):
        return False
    return len(qualification.get("missing") or []) >= 2


class FirstTouch:
    """Runs the flow for one lead at a time against the stage store."""

    def __init__(
        self,
        sessions: Sessions,
        cadence: Cadence,
        qualifier: EmailQualifier,
        *,
        provider: EnrichmentProvider | None = None,
        config: FirstTouchConfig = FirstTouchConfig(),
    ) -> None:
        self.sessions = sessions
        self.cadence = cadence
        self.qualifier = qualifier
        self.provider = provider
        self.config = config

    async def process(self, lead_id: int, now: datetime) -> FirstTouchOutcome | None:
        """Enrich, qualify and start the first touch; None when the lead is not for this
        flow (no email, gone) or was already processed (by another run, too)."""
        async with self.sessions() as session:
            lead = await lead_store.find_lead(session, lead_id)
            if lead is None or not lead.email or lead.qualification is not None:
                return None
            fields = {
                "name": lead.name,
                "company": lead.company,
                "role": lead.role,
                "source": lead.source,
            }
            attribution = dict(lead.attribution or {})
            email, phone = lead.email, lead.phone
            forms = await form_submissions(session, lead_id)
        # Every form the lead sent, oldest first: a later answer to a question wins.
        message = "\n\n".join(f.message for f in forms if f.message)
        answers = {q: a for f in forms for q, a in f.answers.items()}
        enrichment = await enrich(
            email=email,
            phone=phone,
            role=fields["role"],
            company=fields["company"],
            name=fields["name"],
            provider=self.provider,
        )
        qualification = await self.qualifier.qualify(
            fields, attribution, enrichment, now, message=message, answers=answers
        )
        action, sequence = decide(qualification, enrichment, self.config)
        qualification["first_touch"] = {
            "action": action,
            "sequence": sequence,
            "cadence_version": self.cadence.version,
        }
        async with self.sessions.begin() as session:
            row = await lead_store.store_qualification(
                session, lead_id, qualification=qualification, enrichment=enrichment, now=now
            )
            if row is None:
                return None  # another run stored its result first; it started the touches
            started = 0
            # A rep may have taken over (or the lead opted out) while we were enriching.
            if (
                sequence
                and row.stage == Stage.NEW.value
                and not row.opted_out_at
                and not row.bot_paused
            ):
                started = await start_sequence(
                    session, lead_id, sequence, cadence=self.cadence, now=now
                )
        log.info(
            "lead %s: tier %s, %s (%d touches)", lead_id, qualification["tier"], action, started
        )
        return FirstTouchOutcome(lead_id, str(qualification["tier"]), action, sequence, started)


async def unprocessed_leads(
    session: Session,
    config: FirstTouchConfig,
    *,
    now: datetime,
    limit: int = 100,
    after_id: int = 0,
) -> list[int]:
    """New email leads created by one of ``config.actors`` within ``max_age`` that were not
    qualified yet: the ones a crashed or lost background task left behind. In id order from
    ``after_id``: page with :class:`UnprocessedScan`, so leads that keep failing never hide
    the ones after them."""
    return await lead_store.unqualified_new_leads(
        session,
        created_by=config.actors,
        since=now - config.max_age,
        after_id=after_id,
        limit=limit,
    )


class UnprocessedScan:
    """The safety job's walk over :func:`unprocessed_leads`, one page a run, round robin.

    Always reading the first page would starve every lead behind ``limit`` leads that keep
    failing (an enrichment provider that rejects them, a qualifier bug): each run goes on
    after the last lead of the previous one and starts over once it reaches the end."""

    def __init__(self, config: FirstTouchConfig, *, limit: int = 100) -> None:
        self.config = config
        self.limit = limit
        self._after = 0

    async def next(self, session: Session, now: datetime) -> list[int]:
        """The next page of leads to process (after the end, the first page again)."""
        ids = await unprocessed_leads(
            session, self.config, now=now, limit=self.limit, after_id=self._after
        )
        if not ids and self._after:  # past the end: start over
            self._after = 0
            ids = await unprocessed_leads(session, self.config, now=now, limit=self.limit)
        self._after = ids[-1] if len(ids) == self.limit else 0
        return ids


async def awaiting_first_reply(
    session: Session, sequence: str, step: str, *, limit: int = 200
) -> list[Touch]:
    """First replies held for a rep's approval whose rep was not sent the link yet (the
    link sender marks ``meta["approval_link_sent_at"]``), oldest first.

    The filter is in the query, before the ``LIMIT``: filtered afterwards, ``limit`` drafts
    that already had their link would hide every newer one for good."""
    return await awaiting_approval_unlinked(session, sequence, step, limit=limit)
