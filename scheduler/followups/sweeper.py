"""The sweeper: claim due touches, re-check each lead, draft, then send or queue for approval.

One sweep: claim a batch (one statement, committed at once); load the batch's leads in one
query; draft outside any transaction (an LLM may take seconds); then one short transaction
re-checks the leads, fences on the claim (a touch cancelled meanwhile, or reaped and
reclaimed elsewhere, is left alone), stores the drafts and enqueues the outbox rows. Only
after that commit does delivery start, a batch at a time (``Dispatcher.deliver_many``, while
the next batch is being drafted), through the outbox, whose key
(``lead:<id>:touch:<sequence>:<step>:<cycle>``) keeps a send at most once even if two
processes somehow got here with the same touch.

Time: ``sweep(now)`` is told when it starts; every batch reads the clock again (``clock``,
injected so tests control it) and claims, records and delivers at the time it really runs,
so a long sweep never stamps its tenth batch with the first one's time (the reapers would
take back claims seconds old, and mark sends still in flight ``uncertain``). While a batch
is being drafted its claims are renewed (:func:`scheduler.followups.touches.renew`) at least every
quarter of the lease, so a slow drafter never loses its own work to the reaper.

Locks (the one order of :mod:`scheduler.store`): the transaction that records a batch locks the
batch's lead rows first (ascending id), then its touches, then writes the outbox rows; a
reply that updates the lead and then cancels its touches therefore waits for the sweep, or
the sweep for it, and neither deadlocks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scheduler.delivery.outbox import Dispatcher
from scheduler.errors import NotFoundError
from scheduler.followups.cadence import Cadence
from scheduler.followups.draft_filter import DraftPolicy
from scheduler.followups.drafting import Draft, DraftContext, Drafter
from scheduler.followups.gates import BookingLink, LeadFacts, load_facts, skip_reason
from scheduler.followups.touches import TouchStateError, TouchStatus, outbox_key
from scheduler.store import Session, Sessions
from scheduler.store import touches as touch_store
from scheduler.store.leads import lock_leads
from scheduler.store.models import Touch, utcnow
from scheduler.store.outbox import enqueue_many, outbox_row
from scheduler.store.touches import Claimed, claim_due, find_touch, reap, renew

log = logging.getLogger("leadbot.sweeper")


@dataclass(frozen=True, slots=True)
class SweepConfig:
    """Tuning of the sweeper (from ``LEADBOT_SWEEP_*`` / ``LEADBOT_TOUCH_*``)."""

    batch: int = 200
    max_batches: int = 10  # per run: the claim LIMIT is the send throttle
    lease: timedelta = timedelta(minutes=5)
    max_attempts: int = 3
    concurrency: int = 16
    history: int = 10


@dataclass(slots=True)
class SweepResult:
    """What one sweep did."""

    claimed: int = 0
    sent: int = 0
    awaiting_approval: int = 0
    skipped: int = 0
    failed: int = 0
    outbox_ids: list[int] = field(default_factory=list)


Clock = Callable[[], datetime]


class _Lease:
    """Keeps one batch's claims fresh while it is drafted: renewed when a quarter of the
    lease has passed since the last renewal (checked around every draft, and by a heartbeat
    for a single draft slower than that)."""

    def __init__(
        self, sessions: Sessions, token: str, lease: timedelta, at: Clock, claimed_at: datetime
    ) -> None:
        self.sessions, self.token, self.at = sessions, token, at
        self.every = lease / 4
        self.last = claimed_at
        self._lock = asyncio.Lock()

    async def keep(self) -> None:
        """Renew the claims if they are getting old; never fails the batch."""
        if self.at() - self.last < self.every:
            return
        async with self._lock:
            now = self.at()
            if now - self.last < self.every:
                return  # renewed by another draft meanwhile
            try:
                await renew(self.sessions, self.token, now=now)
                self.last = now
            except Exception:  # the database is down: the reaper cannot run either
                log.warning("renewing the claims of batch %s failed", self.token, exc_info=True)

    async def heartbeat(self) -> None:
        """Run until cancelled, renewing on time even while no draft completes."""
        while True:
            await asyncio.sleep(max(self.every.total_seconds(), 0.05))
            await self.keep()


@dataclass(slots=True)
class _Work:
    claim: Claimed
    draft: Draft | None = None
    error: str | None = None


class Sweeper:
    """Turns due touch rows into outbox rows (or drafts awaiting a rep)."""

    def __init__(
        self,
        sessions: Sessions,
        cadence: Cadence,
        drafter: Drafter,
        dispatcher: Dispatcher | None,
        *,
        links: dict[str, str],
        booking_link: BookingLink | None = None,
        config: SweepConfig = SweepConfig(),
        clock: Clock = utcnow,
    ) -> None:
        self.sessions = sessions
        self.cadence = cadence
        self.drafter = drafter
        self.dispatcher = dispatcher
        self.links = links
        self.booking_link = booking_link
        self.config = config
        self.clock = clock
        self._limit = asyncio.Semaphore(config.concurrency)

    def _timer(self, now: datetime) -> Clock:
        """The current time for a sweep that started at ``now``: ``now`` plus what the clock
        says has passed since (``now`` itself in tests that pass a fixed time)."""
        started = self.clock()
        return lambda: now + (self.clock() - started)

    # -- periodic jobs -------------------------------------------------------------------

    async def sweep(self, now: datetime) -> SweepResult:
        """Process due touches, batch by batch, up to ``max_batches``; deliver what was sent.

        A batch's delivery runs while the next batch is claimed and drafted (at most one
        delivery in flight), so SMTP round trips overlap the sweeping work."""
        total = SweepResult()
        at = self._timer(now)
        delivering: asyncio.Task[None] | None = None
        try:
            for _ in range(self.config.max_batches):
                result = await self._process(at)
                if delivering is not None:
                    await delivering
                    delivering = None
                for name in ("claimed", "sent", "awaiting_approval", "skipped", "failed"):
                    setattr(total, name, getattr(total, name) + getattr(result, name))
                total.outbox_ids += result.outbox_ids
                if result.outbox_ids:
                    delivering = asyncio.create_task(self._deliver(result.outbox_ids, at()))
                if result.claimed < self.config.batch:
                    break
            if delivering is not None:
                await delivering
                delivering = None
        finally:
            if delivering is not None:  # failing or cancelled: let the claimed sends finish
                await asyncio.wait([delivering])
                if not delivering.cancelled() and delivering.exception() is not None:
                    log.error("delivering a batch failed", exc_info=delivering.exception())
        return total

    async def reap(self, now: datetime) -> tuple[int, int]:
        """Return stale claims to pending (or failed past the attempt cap)."""
        return await reap(
            self.sessions, now=now, lease=self.config.lease, max_attempts=self.config.max_attempts
        )

    async def sweep_once(self, now: datetime) -> SweepResult:
        """Claim one batch, process it, deliver its messages."""
        at = self._timer(now)
        result = await self._process(at)
        await self._deliver(result.outbox_ids, at())
        return result

    async def _process(self, at: Clock) -> SweepResult:
        """Claim one batch at the current time and turn it into outbox rows (not delivered
        yet), keeping the claims fresh while drafting."""
        claimed_at = at()
        claims = await claim_due(self.sessions, now=claimed_at, limit=self.config.batch)
        result = SweepResult(claimed=len(claims))
        if not claims:
            return result
        async with self.sessions() as session:
            facts = await load_facts(
                session,
                {c.lead_id for c in claims},
                self.config.history if self.drafter.needs_history else 0,
            )
        work = [_Work(c) for c in claims]
        lease = _Lease(self.sessions, claims[0].token, self.config.lease, at, claimed_at)
        heartbeat = asyncio.create_task(lease.heartbeat())
        try:
            await asyncio.gather(
                *(self._draft(w, facts.get(w.claim.lead_id), claimed_at, lease) for w in work)
            )
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
        await self._record(work, at(), result)
        return result

    # -- steps ---------------------------------------------------------------------------

    async def _draft(
        self, work: _Work, facts: LeadFacts | None, now: datetime, lease: _Lease
    ) -> None:
        claim = work.claim
        if facts is None or skip_reason(facts, claim.sequence, claim.created_at) is not None:
            return  # decided (and recorded) in _record, against fresh data
        step = self.cadence.step(claim.sequence, claim.step)
        if step is None:
            work.error = f"step {claim.sequence}.{claim.step} is no longer in the cadence file"
            return
        channel = facts.channel_for(claim.channel)
        if channel is None:
            return
        context = DraftContext(
            sequence=claim.sequence,
            step=step,
            channel=channel,
            lead=facts.template_lead(),
            answers=facts.answers,
            links=facts.links({**self.cadence.resources, **self.links}, self.booking_link),
            policy=self._policy(channel),
            history=facts.history,
            notes=facts.notes,
        )
        async with self._limit:
            await lease.keep()
            try:
                work.draft = await self.drafter.draft(context)
            except Exception as exc:  # a template bug: keep the touch visible, do not retry
                log.exception("drafting touch %s failed", claim.id)
                work.error = f"drafting failed: {exc.__class__.__name__}: {exc}"[:500]
            await lease.keep()

    def _policy(self, channel: str) -> DraftPolicy:
        allowed = tuple(u for u in (*self.links.values(), *self.cadence.resources.values()) if u)
        return DraftPolicy(
            allowed_urls=allowed,
            allowed_prices=tuple(self.cadence.allowed_prices),
            max_length=self.cadence.max_length.get(channel, 1500),  # type: ignore[call-overload]
        )

    async def _record(self, work: list[_Work], now: datetime, result: SweepResult) -> None:
        ids = [w.claim.id for w in work]
        token = work[0].claim.token
        terminal: dict[int, str] = {}
        async with self.sessions.begin() as session:
            # The one lock order: the leads first (a reply locks its lead before cancelling
            # the lead's touches), then our touch rows, so a concurrent cancel waits for us
            # or wins outright, and never deadlocks with us.
            await lock_leads(session, {w.claim.lead_id for w in work}, key_share=True)
            still_ours = await touch_store.still_claimed(session, ids, token)
            facts = await load_facts(session, {w.claim.lead_id for w in work}, 0)
            updates: list[dict[str, Any]] = []
            sends: list[_Send] = []
            for w in work:
                if w.claim.id not in still_ours:
                    continue
                update_row = await self._outcome(
                    session,
                    w,
                    facts=facts.get(w.claim.lead_id),
                    now=now,
                    result=result,
                    terminal=terminal,
                    sends=sends,
                )
                # The same dict _enqueue fills ``outbox_id`` into (a copy would lose it).
                update_row.update(id=w.claim.id, claim_token=None)
                updates.append(update_row)
            await self._enqueue(session, sends, now, result)
            await touch_store.update_touches(session, updates)
            for lead_id, reason in terminal.items():
                await touch_store.cancel_waiting(session, lead_id, reason=reason)

    async def _outcome(
        self,
        session: Session,
        work: _Work,
        *,
        facts: LeadFacts | None,
        now: datetime,
        result: SweepResult,
        terminal: dict[int, str],
        sends: list[_Send],
    ) -> dict[str, Any]:
        claim = work.claim
        reason = (
            "lead deleted"
            if facts is None
            else skip_reason(facts, claim.sequence, claim.created_at)
        )
        if reason is not None:
            result.skipped += 1
            if facts is not None and facts.is_final(reason):
                terminal[claim.lead_id] = reason
            return {"status": TouchStatus.SKIPPED.value, "note": reason}
        assert facts is not None
        if work.error is not None:
            result.failed += 1
            return {"status": TouchStatus.FAILED.value, "note": work.error}
        channel = facts.channel_for(claim.channel)
        if channel is None or work.draft is None:
            result.skipped += 1
            note = facts.unreachable_reason()
            if facts.is_final(note):
                terminal[claim.lead_id] = note
            return {"status": TouchStatus.SKIPPED.value, "note": note}
        draft = work.draft
        meta = {**draft.meta, "channel": channel}
        if draft.subject:
            meta["subject"] = draft.subject
        step = self.cadence.step(claim.sequence, claim.step)
        approval = step.approval if step is not None else False
        if approval is True or (approval == "hot" and facts.tier == "hot"):
            result.awaiting_approval += 1
            return {
                "status": TouchStatus.AWAITING_APPROVAL.value,
                "needs_approval": True,
                "draft": draft.text,
                "meta": meta,
            }
        # Queued, not sent: the outbox records ``sent`` (``sent_at``, the move to contacted)
        # when the channel accepts it, or ``failed`` / ``uncertain``.
        row: dict[str, Any] = {
            "status": TouchStatus.QUEUED.value,
            "draft": draft.text,
            "meta": meta,
            "outbox_id": None,  # filled in by _enqueue
        }
        sends.append(_Send(claim, facts, channel, draft.text, meta, row))
        result.sent += 1
        return row

    async def _enqueue(
        self, session: Session, sends: list[_Send], now: datetime, result: SweepResult
    ) -> None:
        """One multi-row outbox insert for the batch (ON CONFLICT DO NOTHING on the key)."""
        if not sends:
            return
        rows = [_outbox_row(send, now) for send in sends]
        ids, new = await enqueue_many(session, rows)
        result.outbox_ids += new
        for send, row in zip(sends, rows, strict=True):
            send.row["outbox_id"] = ids.get(row["key"])
        await _supersede(session, [send.claim for send in sends], self.cadence)

    async def _deliver(self, outbox_ids: list[int], now: datetime) -> None:
        if self.dispatcher is None or not outbox_ids:
            return  # the outbox job delivers them
        # One claim, concurrent sends (bounded per channel), one transaction of outcomes.
        await self.dispatcher.deliver_many(outbox_ids, now, concurrency=self.config.concurrency)

    # -- approval ------------------------------------------------------------------------

    async def approve(
        self, touch_id: int, *, by: str, now: datetime, text: str | None = None
    ) -> Touch:
        """A rep approves (and may edit) a draft: re-check the lead, enqueue, deliver."""
        async with self.sessions.begin() as session:
            await lock_leads(session, {await _lead_of(session, touch_id)}, key_share=True)
            touch = await _awaiting_approval(session, touch_id)
            facts = (await load_facts(session, {touch.lead_id}, 0)).get(touch.lead_id)
            reason = (
                "lead deleted"
                if facts is None
                else skip_reason(facts, touch.sequence, touch.created_at)
            )
            touch.approved_at, touch.approved_by = now, by
            if reason is not None:
                touch.status, touch.note = TouchStatus.SKIPPED.value, reason
                return touch
            assert facts is not None
            meta = dict(touch.meta)
            if text is not None and text.strip() != (touch.draft or ""):
                touch.draft, meta["edited_by"] = text.strip(), by
            # Chosen again now: the address the draft was made for may be suppressed since
            # (or the lead now reachable only on the other channel).
            channel = facts.channel_for(touch.channel)
            if channel is None:
                touch.status, touch.note = TouchStatus.SKIPPED.value, facts.unreachable_reason()
                return touch
            meta["channel"] = channel
            claim = Claimed(
                touch.id,
                touch.lead_id,
                touch.sequence,
                touch.step,
                touch.cycle,
                touch.channel,
                touch.attempts,
                touch.created_at,
                token="",
            )
            row: dict[str, Any] = {}
            send = _Send(claim, facts, channel, touch.draft or "", meta, row)
            await self._enqueue(session, [send], now, SweepResult())
            outbox_id = row.get("outbox_id")
            touch.status, touch.outbox_id, touch.meta = (TouchStatus.QUEUED.value, outbox_id, meta)
        if outbox_id is not None:
            await self._deliver([outbox_id], now)
            async with self.sessions() as session:  # its status now follows the delivery
                touch = await find_touch(session, touch.id) or touch
        return touch

    async def reject(self, touch_id: int, *, by: str, reason: str, now: datetime) -> Touch:
        """A rep discards a draft: the touch is skipped, the rest of the cadence goes on."""
        async with self.sessions.begin() as session:
            touch = await _awaiting_approval(session, touch_id)
            touch.status, touch.note = TouchStatus.SKIPPED.value, f"rejected by {by}: {reason}"
            touch.approved_by, touch.approved_at = by, now
        return touch


async def _lead_of(session: Session, touch_id: int) -> int:
    """The lead of a touch (a touch never changes lead), so its lead can be locked first."""
    lead_id = await touch_store.lead_of_touch(session, touch_id)
    if lead_id is None:
        raise NotFoundError(f"touch {touch_id} does not exist")
    return lead_id


async def _supersede(session: Session, claims: list[Claimed], cadence: Cadence) -> None:
    # A Day 1 draft still waiting for a rep when Day 3 goes out would arrive out of order.
    groups: dict[tuple[str, str, int], list[int]] = {}
    for claim in claims:
        groups.setdefault((claim.sequence, claim.step, claim.cycle), []).append(claim.lead_id)
    for (sequence, step, cycle), lead_ids in groups.items():
        steps = cadence.sequences[sequence].steps if sequence in cadence.sequences else []
        ids = [s.id for s in steps]
        earlier = [s.id for s in steps[: ids.index(step)] if s.approval] if step in ids else []
        if not earlier:
            continue
        note = f"superseded by {step}"
        await touch_store.supersede(
            session, lead_ids, sequence=sequence, cycle=cycle, earlier_steps=earlier, note=note
        )


@dataclass(slots=True)
class _Send:
    claim: Claimed
    facts: LeadFacts
    channel: str
    text: str
    meta: dict[str, Any]
    row: dict[str, Any]


def _outbox_row(send: _Send, now: datetime) -> dict[str, Any]:
    claim = send.claim
    # Plain text on every channel: WhatsApp sends it as is inside the 24-hour window and the
    # configured template outside it; email reads the text (and the subject).
    payload: dict[str, Any] = {"text": send.text, "kind": "text", "touch_id": claim.id}
    if send.meta.get("subject"):
        payload["subject"] = send.meta["subject"]
    return outbox_row(
        key=outbox_key(claim.lead_id, claim.sequence, claim.step, claim.cycle),
        channel=send.channel,
        recipient=send.facts.address(send.channel) or "",
        payload=payload,
        now=now,
        lead_id=claim.lead_id,
    )


async def _awaiting_approval(session: Session, touch_id: int) -> Touch:
    """The touch, locked, if it is a draft waiting for a rep; else a typed error."""
    touch = await touch_store.lock_touch(session, touch_id)
    if touch is None:
        raise NotFoundError(f"touch {touch_id} does not exist")
    if touch.status != TouchStatus.AWAITING_APPROVAL.value:
        raise TouchStateError(f"touch {touch_id} is {touch.status}, not awaiting approval")
    return touch
