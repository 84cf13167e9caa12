"""The durable outbox: every message we send is a row first, and is sent at most once.

An intent gets a deterministic key (``lead:42:touch:day3``, ``wa:wamid.IN1:reply``), so
asking twice to send the same thing stores one row. Delivery claims the row
(``pending → sending``) and commits *before* calling the channel, then records the outcome:

- ``sent`` with the provider's id;
- back to ``pending`` with a backoff when the channel says the message surely did not go out
  and retrying may help (connection refused, 429, 5xx with an error body), ``failed`` once
  attempts run out or when the failure is permanent (a retry due within seconds is made by
  the process that tried, :meth:`Dispatcher.deliver_and_follow`; the others by the outbox
  job);
- ``uncertain`` when nobody knows (a timeout after the request left, an unexpected error, a
  crash after the row's own request may have left). Uncertain rows are shown to a human and
  never resent by code.

The claim also checks, in its own transaction, that the message may still go out at all: the
recipient is not on the suppression list (:func:`scheduler.store.suppressions.suppressed_among`)
and, for a message to the lead (not to a rep about them), the lead has not opted out (nor,
for email, been marked unreachable: ``leads.email_status``). Such a row ends ``failed`` with
the reason and is never handed to a channel: a "stop" wins over a message waiting for a
retry. The one exception is the opt-out's own confirmation (payload flag
:data:`CONFIRMS_OPT_OUT`, set only by the turn that recorded the opt-out).

Each claimed row is marked just before its own request leaves (``sending_started_at``,
fenced on the claim's ``claim_token``), and each outcome is recorded as soon as it is known
(group-committed with the outcomes that arrive meanwhile, :mod:`scheduler.group_commit`):
a slow send delays only its own row, and after a crash the reaper knows which ``sending``
rows never left (back to ``pending``, the try is free) and which may have (``uncertain``).

A follow-up's touch (``payload["touch_id"]``) follows its row: ``queued`` → ``sent`` (with
``sent_at``, and the lead's move from new to contacted) | ``failed`` | ``uncertain``.
Recording takes its locks in the store's one lock order (:mod:`scheduler.store`: leads by id,
then touches, then outbox rows, then messages) and is retried when a deadlock or a locked
database aborts it: the sends already happened, and recording them again is idempotent.

Channels (WhatsApp, email, sandbox) implement :class:`scheduler.delivery.channels.Channel`
(re-exported here); ``bot`` wires them. A channel may also implement ``BatchChannel`` to check and
send a whole batch at once; one that reports each item
(:class:`scheduler.delivery.channels.BatchHooks`, the email channel) gets the same per-row start
mark and recording, others have their rows all marked started before the batch and recorded when it
returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from scheduler.delivery.channels import (
    BatchChannel,
    BatchHooks,
    Channel,
    DeliveryError,
    MaybeSent,
    NotSent,
    Receipt,
    SendOutcome,
)
from scheduler.group_commit import GroupCommit
from scheduler.pipeline.stages import transition
from scheduler.store import Session, Sessions, parked_statuses, sending
from scheduler.store.engine import run_retrying
from scheduler.store.models import OutboxState, Stage, utcnow
from scheduler.store.outbox import enqueue
from scheduler.store.suppressions import normalize_address, suppression_reasons
from scheduler.store.touches import TouchStatus

log = logging.getLogger("leadbot.outbox")

# A prospect is waiting for a conversational reply: the first retries come within seconds (a
# vendor's 5xx blip twice in a row still answers well inside 30 s), later ones space out.
DEFAULT_BACKOFF = (
    timedelta(seconds=2),
    timedelta(seconds=5),
    timedelta(seconds=15),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
)
# Payload flag of the one message that may reach a lead who opted out: the confirmation
# that the opt-out's own turn sends (every other path checks the opt-out before enqueueing).
CONFIRMS_OPT_OUT = "confirms_opt_out"
RECORD_ATTEMPTS = 5  # tries of a recording transaction aborted by a deadlock or a lock
# How long a claim may wait for its request to start before the reaper takes it back. A live
# worker starts a claimed row within milliseconds (a few seconds behind a full concurrency
# slot); past this its worker is dead or stalled, and a prospect is waiting for the reply. A
# stalled worker that wakes up later finds its claim gone (the start is fenced on the token).
CLAIM_LEASE = timedelta(seconds=10)
# How long a started request may run before its row is deemed interrupted (far beyond any
# channel's own timeout: the worker that sent it is gone).
SEND_LEASE = timedelta(minutes=5)
# A row that comes back ``pending`` with its retry due this soon is tried again by the process
# that tried it (see :meth:`Dispatcher.deliver_and_follow`); later retries are the outbox job's.
FOLLOW_WITHIN = timedelta(seconds=30)
FOLLOW_ROUNDS = 3  # local retries of one row at most; the outbox job is the backstop


@dataclass(frozen=True, slots=True)
class _Claim:
    item_id: int
    channel: str
    recipient: str
    payload: dict[str, Any]
    attempts: int
    lead_id: int | None
    token: str
    now: datetime = field(compare=False)

    @property
    def touch_id(self) -> int | None:
        """The follow-up touch this row sends, if it is one."""
        return _touch_of(self.payload)


class Refused(NotSent):
    """The claim found that the message must not go out (opted out, suppressed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="suppressed", is_transient=False)


_CHUNK = sending.CHUNK
_Entry = tuple[_Claim, SendOutcome]
_ClaimRequest = tuple[list[int], datetime]
_Claimed = tuple[list[_Claim], list[_Entry]]


class Dispatcher:
    """Delivers outbox rows through their channels, following the module's rules."""

    def __init__(
        self,
        sessions: Sessions,
        channels: Mapping[str, Channel],
        *,
        backoff: tuple[timedelta, ...] = DEFAULT_BACKOFF,
        record_attempts: int = RECORD_ATTEMPTS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.channels = dict(channels)
        self.backoff = backoff
        self.record_attempts = record_attempts
        self.clock = clock
        self._following: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        # Callers that deliver at the same time (one per conversation) share transactions.
        self._claims: GroupCommit[_ClaimRequest, _Claimed] = GroupCommit(
            self._claim_many, name="outbox-claim", max_batch=500
        )
        self._starts: GroupCommit[list[_Claim], list[bool]] = GroupCommit(
            self._start_many, name="outbox-start", max_batch=500
        )
        self._records: GroupCommit[list[_Entry], dict[int, str]] = GroupCommit(
            self._record_many, name="outbox-record", max_batch=500
        )

    async def deliver(self, item_id: int, now: datetime) -> str:
        """Try to send one row now; return its state afterwards. A row that is not due or
        not pending (already sent, being sent elsewhere, uncertain) is left alone."""
        return (await self.deliver_many([item_id], now))[item_id]

    async def deliver_due(
        self, now: datetime, limit: int = 100, *, concurrency: int = 8, follow: bool = False
    ) -> int:
        """Deliver pending rows that are due (retries, deferred sends); return how many
        were tried. The claim is one conditional UPDATE, so concurrent callers never share
        a row. ``follow``: rows that come back due again soon are retried then, as by
        :meth:`deliver_and_follow` (the periodic job: not a whole period later)."""
        async with self.sessions() as session:
            ids = await sending.due_ids(session, now, limit)
        if ids:
            states = await self.deliver_many(ids, now, concurrency=concurrency)
            if follow:
                self._follow(_pending(states))
        return len(ids)

    async def deliver_and_follow(self, ids: Sequence[int], now: datetime) -> dict[int, str]:
        """:meth:`deliver_many`, then try again, in this process, each row that came back
        ``pending`` with its retry due within :data:`FOLLOW_WITHIN` (a 5xx blip, a pause
        after throttling), when it falls due, at most :data:`FOLLOW_ROUNDS` times.

        For messages somebody is waiting for (a conversation's reply): the retry does not
        wait for the outbox job's next run, nor for the scheduler process to be alive. Two
        processes trying the same row are safe (the claim is one conditional UPDATE).
        """
        states = await self.deliver_many(ids, now)
        self._follow(_pending(states))
        return states

    def _follow(self, ids: list[int], rounds: int = FOLLOW_ROUNDS) -> None:
        if ids and rounds > 0 and not self._closed.is_set():
            self._spawn(self._retry_when_due(ids, rounds))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._following.add(task)  # a reference, or the loop may drop the task
        task.add_done_callback(self._following.discard)

    async def _retry_when_due(self, ids: list[int], rounds: int) -> None:
        """Wait for each row's retry time (grouped by it), then deliver it again."""
        try:
            async with self.sessions() as session:
                due = await sending.retry_times(session, ids)
        except Exception:  # the rows are stored: the outbox job sends what is pending
            log.exception("outbox: reading the retry times of %s failed", ids)
            return
        now = self.clock()
        groups: dict[float, list[int]] = {}
        for item_id, at in due:
            wait = max(0.0, ((at or now) - now).total_seconds())
            if wait <= FOLLOW_WITHIN.total_seconds():
                groups.setdefault(wait, []).append(item_id)
        for wait, group in groups.items():
            self._spawn(self._retry_after(wait, group, rounds))

    async def _retry_after(self, wait: float, ids: list[int], rounds: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), wait)
        if self._closed.is_set():  # shutting down: the outbox job sends these rows
            return
        try:
            states = await self.deliver_many(ids, self.clock())
        except Exception:
            log.exception("outbox: retrying %s in this process failed", ids)
            return
        self._follow(_pending(states), rounds - 1)

    async def deliver_many(
        self, ids: Sequence[int], now: datetime, *, concurrency: int = 8
    ) -> dict[int, str]:
        """Send every given row that is pending and due; return each id's state afterwards.

        One statement claims them all (``pending → sending``, committed before any send,
        with the send-time checks); rows not claimed (not due, sent, being sent elsewhere,
        uncertain) are left alone. The claimed rows are sent at most ``concurrency`` at a
        time per channel, and each outcome is recorded as soon as it is known.
        """
        unique = list(dict.fromkeys(ids))
        claims, refused = await self._claims.submit((unique, now))
        states: dict[int, str] = {}
        claimed = {c.item_id for c in claims} | {c.item_id for c, _ in refused}
        others = [i for i in unique if i not in claimed]
        if others:
            async with self.sessions() as session:
                states.update(await sending.states_of(session, others))
            states.update({i: "missing" for i in others if i not in states})
        if refused:
            states.update(await self._records.submit(refused))
        if claims:
            states.update(await self._send(claims, concurrency))
        return states

    async def reap(
        self, now: datetime, lease: timedelta = SEND_LEASE, claim_lease: timedelta = CLAIM_LEASE
    ) -> int:
        """Rows stuck in ``sending`` (the sender crashed or hung): those claimed longer than
        ``claim_lease`` ago whose own request never started go back to ``pending`` (the try
        is free) and are sent again; those whose request started longer than ``lease`` ago
        may have left and become ``uncertain`` (a human decides). Returns how many rows
        were reaped."""
        cutoff = now - lease
        async with self.sessions() as session:
            started = await sending.started_before(session, cutoff)

        async def work(session: Session) -> int:
            reaped: set[int] = set()
            if started:
                # The lock order: the touches of those rows first, then the rows.
                by_touch = {t: i for i, p in started if (t := _touch_of(p)) is not None}
                await sending.lock_queued_touches(session, list(by_touch))
                reaped = await sending.mark_interrupted(
                    session, [i for i, _ in started], cutoff, now
                )
                touches = [t for t, i in by_touch.items() if i in reaped]
                await sending.finish_queued_touches(
                    session, touches, TouchStatus.UNCERTAIN, "interrupted while sending", now
                )
            released = await sending.release_unstarted(session, now - claim_lease, now)
            return len(reaped) + released

        return await run_retrying(
            self.sessions, work, attempts=self.record_attempts, what="reaping the outbox"
        )

    async def close(self) -> None:
        """Drop the local retries not yet due (the outbox job sends those rows) and wait
        until the sends under way and the outcomes handed over are recorded (shutdown)."""
        self._closed.set()
        await asyncio.gather(*self._following, return_exceptions=True)
        await self._claims.close()
        await self._starts.close()
        await self._records.close()

    # -- steps ---------------------------------------------------------------------------

    async def _claim_many(self, requests: list[_ClaimRequest]) -> list[_Claimed]:
        """One claim for the ids of every request (the latest ``now`` of them decides what is
        due); each request gets the claims of its own ids."""
        now = max(at for _, at in requests)
        wanted = list(dict.fromkeys(i for ids, _ in requests for i in ids))
        claims: dict[int, _Claim] = {}
        refused: dict[int, _Entry] = {}
        for first in range(0, len(wanted), _CHUNK):
            mine, blocked = await self._claim(wanted[first : first + _CHUNK], now)
            claims.update({c.item_id: c for c in mine})
            refused.update({c.item_id: (c, outcome) for c, outcome in blocked})
        results: list[_Claimed] = []
        for ids, _ in requests:  # a row asked for twice goes to the first asker
            results.append(
                (
                    [claims.pop(i) for i in ids if i in claims],
                    [refused.pop(i) for i in ids if i in refused],
                )
            )
        return results

    async def _claim(self, ids: list[int], now: datetime) -> tuple[list[_Claim], list[_Entry]]:
        """Claim the due rows among ``ids``; those that must not go out come back apart,
        with the outcome that records why (checked in the claim's transaction)."""
        token = uuid.uuid4().hex
        async with self.sessions.begin() as session:
            rows = await sending.claim(session, ids, now, token)
            claims = [
                _Claim(r.id, r.channel, r.recipient, r.payload, r.attempts, r.lead_id, token, now)
                for r in rows
            ]
            reasons = await _refusals(session, claims) if claims else {}
        claims.sort(key=lambda c: c.item_id)
        refused: list[_Entry] = [
            (c, Refused(reasons[c.item_id])) for c in claims if c.item_id in reasons
        ]
        for claim, outcome in refused:
            log.info("outbox %s: not sent: %s", claim.item_id, outcome)
        return [c for c in claims if c.item_id not in reasons], refused

    async def _send(self, claims: list[_Claim], concurrency: int) -> dict[int, str]:
        """Send every claim (no session held while sending); each one's state afterwards."""
        groups: dict[str, list[_Claim]] = {}
        for claim in claims:
            groups.setdefault(claim.channel, []).append(claim)
        states: dict[int, str] = {}

        async def one_channel(name: str, group: list[_Claim]) -> None:
            channel = self.channels.get(name)
            if channel is None:
                missing = NotSent(f"no channel {name!r} is configured", is_transient=False)
                states.update(await self._records.submit([(c, missing) for c in group]))
                return
            if getattr(channel, "send_batch", None) is not None:
                states.update(await self._send_batch(channel, group, concurrency))
                return
            limit = asyncio.Semaphore(max(1, concurrency))

            async def one(claim: _Claim) -> None:
                async with limit:
                    [ours] = await self._starts.submit([claim])
                    if not ours:  # reaped and claimed elsewhere meanwhile: theirs now
                        states[claim.item_id] = OutboxState.SENDING.value
                        return
                    outcome: SendOutcome
                    try:
                        outcome = await channel.send(claim.recipient, claim.payload)
                    except Exception as exc:
                        outcome = exc
                states.update(await self._records.submit([(claim, outcome)]))

            await asyncio.gather(*(one(claim) for claim in group))

        await asyncio.gather(*(one_channel(name, group) for name, group in groups.items()))
        return states

    async def _send_batch(
        self, channel: Channel, group: list[_Claim], concurrency: int
    ) -> dict[int, str]:
        if getattr(channel, "reports_each", False):
            return await self._send_batch_each(channel, group, concurrency)
        ours = await self._starts.submit(group)
        started = [c for c, mine in zip(group, ours, strict=True) if mine]
        states = {c.item_id: OutboxState.SENDING.value for c in group}
        if started:
            items = [(c.recipient, c.payload) for c in started]
            results = await _send_through(channel, items, concurrency)
            states.update(await self._records.submit(list(zip(started, results, strict=True))))
        return states

    async def _send_batch_each(
        self, channel: Channel, group: list[_Claim], concurrency: int
    ) -> dict[int, str]:
        """A batch through a channel that reports each item: each is marked started just
        before its request, and recorded as soon as its outcome is known."""
        states = {c.item_id: OutboxState.SENDING.value for c in group}
        recorded: set[int] = set()
        lost: set[int] = set()  # reaped and claimed elsewhere before it started

        async def start(index: int) -> bool:
            [ours] = await self._starts.submit([group[index]])
            if not ours:
                lost.add(index)
            return ours

        async def done(index: int, outcome: SendOutcome) -> None:
            if index in lost or index in recorded:
                return
            recorded.add(index)
            states.update(await self._records.submit([(group[index], outcome)]))

        items = [(c.recipient, c.payload) for c in group]
        send_batch = cast(BatchChannel, channel).send_batch
        try:
            results: list[SendOutcome] = await send_batch(  # type: ignore[call-arg]
                items, concurrency=concurrency, hooks=BatchHooks(start, done)
            )
        except Exception as exc:  # which of them went out is unknown: none is resent
            results = [exc] * len(items)
        rest = [(group[i], r) for i, r in enumerate(results) if i not in recorded | lost]
        if rest:
            states.update(await self._records.submit(rest))
        return states

    async def _start_many(self, batches: list[list[_Claim]]) -> list[list[bool]]:
        """Mark each claim's attempt as started, if the row is still its claim's."""
        claims = [c for batch in batches for c in batch]
        by_token: dict[str, list[int]] = {}
        for claim in claims:
            by_token.setdefault(claim.token, []).append(claim.item_id)
        ours: set[int] = set()
        async with self.sessions.begin() as session:
            for token, ids in by_token.items():
                now = max(c.now for c in claims if c.token == token)
                ours.update(await sending.mark_started(session, token, ids, now))
        return [[c.item_id in ours for c in batch] for batch in batches]

    async def _record_many(self, batches: list[list[_Entry]]) -> list[dict[int, str]]:
        entries = sorted((e for batch in batches for e in batch), key=lambda e: e[0].item_id)
        plan = _Plan()
        for claim, outcome in entries:
            plan.add(
                claim,
                outcome,
                self._failure(claim, outcome, claim.now)
                if not isinstance(outcome, Receipt)
                else None,
            )
        await run_retrying(
            self.sessions,
            plan.write,
            attempts=self.record_attempts,
            what="recording outbox outcomes",
        )
        return [{c.item_id: plan.states[c.item_id] for c, _ in batch} for batch in batches]

    def _failure(self, claim: _Claim, exc: BaseException, now: datetime) -> dict[str, Any]:
        """The row change for a send that raised ``exc`` (keys ``b_*``, ``b_state`` first)."""
        item_id, attempts = claim.item_id, claim.attempts
        if isinstance(exc, NotSent):
            held_back = exc.is_transient and not exc.attempted
            if held_back:
                attempts -= 1  # the channel never contacted the provider: the try is free
            elif not exc.is_transient or attempts >= len(self.backoff) + 1:
                return _final(item_id, OutboxState.FAILED, str(exc))
            delay = self.backoff[attempts - 1] if not held_back else timedelta(0)
            if exc.retry_after is not None:
                delay = max(delay, timedelta(seconds=exc.retry_after))
            return {
                "b_state": OutboxState.PENDING.value,
                "b_id": item_id,
                "b_attempts": attempts,
                "b_next": now + delay,
                "b_error": str(exc),
            }
        if isinstance(exc, MaybeSent):
            return _final(item_id, OutboxState.UNCERTAIN, str(exc))
        # Anything else: we cannot tell whether it went out, so it is never resent.
        log.error(
            "outbox %s: unexpected error from channel %s", item_id, claim.channel, exc_info=exc
        )
        return _final(item_id, OutboxState.UNCERTAIN, repr(exc))


@dataclass(slots=True)
class _Plan:
    """The writes that record a batch of outcomes (pure until :meth:`write`)."""

    states: dict[int, str] = field(default_factory=dict)
    sent: list[dict[str, Any]] = field(default_factory=list)
    final: list[dict[str, Any]] = field(default_factory=list)
    retry: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    leads: dict[int, datetime] = field(default_factory=dict)
    contacted: set[int] = field(default_factory=set)  # leads a follow-up reached
    touches: dict[int, tuple[TouchStatus, str | None, datetime]] = field(default_factory=dict)

    def add(self, claim: _Claim, outcome: SendOutcome, change: dict[str, Any] | None) -> None:
        now, touch_id = claim.now, claim.touch_id
        if change is None:
            assert isinstance(outcome, Receipt)
            self.states[claim.item_id] = OutboxState.SENT.value
            self.sent.append(
                {
                    "b_id": claim.item_id,
                    "b_external_id": outcome.external_id,
                    "b_token": claim.token,
                    "b_now": now,
                }
            )
            if claim.lead_id is not None:
                self.messages.append(_message_row(claim, outcome, now))
                self.leads[claim.lead_id] = max(now, self.leads.get(claim.lead_id, now))
                if touch_id is not None:
                    self.contacted.add(claim.lead_id)
            if touch_id is not None:
                self.touches[touch_id] = (TouchStatus.SENT, None, now)
            return
        state = change["b_state"]
        self.states[claim.item_id] = state
        change = {**change, "b_token": claim.token, "b_now": now}
        if state == OutboxState.PENDING.value:
            self.retry.append({k: v for k, v in change.items() if k != "b_state"})
            return
        self.final.append(change)
        if touch_id is not None:
            status = (
                TouchStatus.FAILED
                if state == OutboxState.FAILED.value
                else (TouchStatus.UNCERTAIN)
            )
            self.touches[touch_id] = (status, change["b_error"], now)

    async def write(self, session: Session) -> None:
        """Every write, in the store's lock order: leads, touches, outbox rows, messages."""
        if self.leads:
            locked = await sending.lock_leads_for_outcomes(session, list(self.leads))
            stages = {row.id: row.stage for row in locked}
            # A send in flight while its lead was erased: it went out, but its text is not
            # written back into the forgotten person's conversation.
            erased = {row.id for row in locked if row.erased_at is not None}
            if erased:
                self.messages = [m for m in self.messages if m["lead_id"] not in erased]
            await sending.set_last_outbound(
                session, {i: at for i, at in self.leads.items() if i in stages}
            )
            for lead_id in sorted(self.contacted):
                if stages.get(lead_id) == Stage.NEW.value:
                    await transition(
                        session,
                        lead_id,
                        Stage.CONTACTED,
                        reason="first touch sent",
                        actor="scheduler",
                        now=self.leads[lead_id],
                        expected_from=Stage.NEW,
                    )
        if self.touches:
            await sending.lock_queued_touches(session, list(self.touches))
            for touch_id in sorted(self.touches):
                status, note, now = self.touches[touch_id]
                await sending.finish_queued_touches(session, [touch_id], status, note, now)
        if self.sent:
            await sending.record_sent(session, self.sent)
            # Statuses Meta reported before these wamids were recorded (item 8).
            await parked_statuses.apply_parked(session, [r["b_id"] for r in self.sent])
        if self.final:
            await sending.record_final(session, self.final)
        if self.retry:
            await sending.record_retry(session, self.retry)
        await sending.insert_messages(session, self.messages)


async def _refusals(session: Session, claims: list[_Claim]) -> dict[int, str]:
    """Why each claimed row must not go out (absent: it may): in the claim's transaction."""
    leads = await sending.opt_out_facts(
        session, sorted({c.lead_id for c in claims if c.lead_id is not None})
    )
    addresses = {normalize_address(c.recipient) for c in claims}
    suppressed = await suppression_reasons(session, addresses)
    reps: set[str] = set()
    if leads:
        # A rep's own address: a message about a lead that goes to its rep is not the lead's.
        found = await sending.rep_addresses_among(session, sorted(addresses))
        reps.update(normalize_address(a) for a in found)
    reasons: dict[int, str] = {}
    for claim in claims:
        if claim.payload.get(CONFIRMS_OPT_OUT) is True:
            continue
        address = normalize_address(claim.recipient)
        if address in suppressed:
            reasons[claim.item_id] = f"{claim.recipient} is suppressed ({suppressed[address]})"
            continue
        if claim.lead_id is None or address in reps or claim.lead_id not in leads:
            continue
        opted_out_at, email_status = leads[claim.lead_id]
        if opted_out_at is not None:
            reasons[claim.item_id] = f"not sent: the lead opted out at {opted_out_at.isoformat()}"
        elif claim.channel == "email" and email_status:
            reasons[claim.item_id] = f"not sent: the lead's email is {email_status}"
    return reasons


def _pending(states: Mapping[int, str]) -> list[int]:
    """The rows that came back ``pending`` (a retry is due later)."""
    return [i for i, state in states.items() if state == OutboxState.PENDING.value]


def _touch_of(payload: object) -> int | None:
    touch_id = payload.get("touch_id") if isinstance(payload, Mapping) else None
    return touch_id if isinstance(touch_id, int) and not isinstance(touch_id, bool) else None


def _final(item_id: int, state: OutboxState, error: str) -> dict[str, Any]:
    log.warning("outbox %s: %s (%s)", item_id, state.value, error)
    return {"b_state": state.value, "b_id": item_id, "b_error": error[:2000]}


def _message_row(claim: _Claim, receipt: Receipt, now: datetime) -> dict[str, Any]:
    return {
        "lead_id": claim.lead_id,
        "channel": claim.channel,
        "direction": "out",
        "external_id": receipt.external_id,
        "body": str(claim.payload.get("text", "")),
        "payload": claim.payload,
        "created_at": now,
    }


async def _send_through(
    channel: Channel, items: list[tuple[str, dict[str, Any]]], concurrency: int
) -> list[SendOutcome]:
    """Each item's outcome through ``channel``'s batch method."""
    send_batch = cast(BatchChannel, channel).send_batch
    try:
        results: list[SendOutcome] = await send_batch(items, concurrency=concurrency)
    except Exception as exc:  # which of them went out is unknown: none is resent
        return [exc] * len(items)
    return results


__all__ = [
    "DEFAULT_BACKOFF",
    "CONFIRMS_OPT_OUT",
    "BatchChannel",
    "BatchHooks",
    "Channel",
    "DeliveryError",
    "Dispatcher",
    "MaybeSent",
    "NotSent",
    "SendOutcome",
    "Receipt",
    "Refused",
    "enqueue",
]
