"""The inbox processor: turns stored inbound WhatsApp messages into exactly one reply per turn.

The webhook stores messages and kicks :meth:`InboxProcessor.kick`; the processor waits for
the sender's burst to end (``burst_window`` of quiet, at most ``4 × burst_window`` in all),
then, holding the sender's lock (``bot.locks``), handles every unprocessed row of theirs as
one turn in three phases:

1. read the rows, the lead and the dialog session (state is read only under the lock);
2. the turn policy, :func:`dialogs.turn.take_turn` (interpret, step the engine per event,
   keep one reply; no transaction open: an LLM call must not hold SQLite's write lock);
3. in ONE transaction: mark the rows processed, record the messages, create or update the
   lead, apply the actions (outbox rows keyed by the wamid), save the session.

After the commit the sender's lock is released and the new outbox rows are delivered, by
this conversation's own task: a slow or hanging send delays only this conversation (its next
turn in this process follows its delivery, so a later reply never overtakes an earlier one),
and the outbox records each send as it completes. The two database steps of a turn (load,
commit) are group commits (:class:`scheduler.group_commit.GroupCommit`): the turns of many
conversations that reach a step together share one transaction, so a flood of new
conversations costs a few round trips per batch instead of twenty per turn. A batch whose
transaction fails is redone turn by turn, so one bad turn fails alone.

A crash anywhere before the commit
leaves the rows unprocessed; :meth:`recover` (startup) and :meth:`sweep` (periodic) pick them
up again, but only once the sender has been quiet longer than a burst can last (another live
worker may be collecting it). A turn that fails records ``attempts`` and ``error`` on its rows
and is retried until ``max_attempts``, then given up with the error kept. Not failures, and
never charged to the rows: a lock that could not be taken (Redis down, held too long), a lock
lease lost mid-turn (nothing is committed), rows another worker handled meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.locks import KeyedLock, Lease, LockUnavailable
from bot.whatsapp.attribution import attribute, strip_ref
from bot.whatsapp.bursts import BurstScheduler
from bot.whatsapp.effects import TurnContext, apply, cancel_follow_ups, revive_dormant
from bot.whatsapp.envelope import InboundMessage
from bot.whatsapp.hooks import Hooks
from bot.whatsapp.sender import PHONE_FLAG, WhatsAppSender, pick, sender_of
from bot.whatsapp.turns import build_events
from dialogs import experiments
from dialogs.actions import Action, OptOut
from dialogs.catalog import ScriptCatalog
from dialogs.errors import LeadbotError
from dialogs.icp import Icp
from dialogs.interpretation import Interpreter
from dialogs.multilingual import follow_language
from dialogs.script import Script
from dialogs.session import Session
from dialogs.turn import take_turn
from scheduler.group_commit import GroupCommit
from scheduler.pipeline.identity import Point, owner_ids
from scheduler.pipeline.leads import LeadIn, lead_seen_at
from scheduler.store import Session as DbSession
from scheduler.store import Sessions, conversations, inbox
from scheduler.store.leads import leads_by_ids, lock_leads
from scheduler.store.models import Lead, utcnow
from scheduler.store.suppressions import lookup_forms, stored_among

log = logging.getLogger("leadbot.inbox")
CHANNEL = "whatsapp"
ACTOR = "whatsapp"  # who created the lead, in its audit row
BATCH = 50  # rows per turn; a longer backlog of one sender is handled over several turns


class RowsTakenElsewhere(LeadbotError, RuntimeError):
    """A turn's rows were marked processed by someone else between its load and its commit
    (a worker whose lock lease had lapsed): a conflict, not a failure of the rows."""


Deliver = Callable[[Sequence[int], datetime], Awaitable[Mapping[int, str]]]


@dataclass(frozen=True, slots=True)
class Dialogs:
    """The scripts and profile conversations run on: a new conversation starts on the
    current version of ``default_script`` (or of its translation in the language of the first
    message), a running one keeps the version it started on (or moves, slots kept, to a
    translation when the prospect clearly changes language: ``dialogs.multilingual``)."""

    catalog: ScriptCatalog
    default_script: str
    icp: Icp
    interpreter: Interpreter


@dataclass(slots=True)
class _Loaded:
    sender: str
    row_ids: list[int]
    messages: list[InboundMessage]
    lead: Lead | None
    stored: dict[str, Any] | None
    suppressed: bool
    who: WhatsAppSender
    owned: dict[Point, int]  # the sender's points that had a lead when loaded


@dataclass(slots=True)
class _Plan:
    session: Session | None
    actions: list[Action]
    prompt_version: str | None = None


@dataclass(frozen=True, slots=True)
class _Turn:
    loaded: _Loaded
    plan: _Plan
    now: datetime


@dataclass(slots=True)
class Stats:
    """Counters for tests and metrics."""

    turns: int = 0
    commits: int = 0  # transactions that committed turns (several turns share one)
    failures: int = 0
    given_up: int = 0
    replies: int = field(default=0)


class InboxProcessor:
    """Handles the WhatsApp inbox; one instance per process."""

    def __init__(
        self,
        sessions: Sessions,
        *,
        locks: KeyedLock,
        dialogs: Dialogs,
        deliver: Deliver,
        hooks: Hooks,
        default_region: str,
        calendly_url: str = "",
        burst_window: float = 0.4,
        max_attempts: int = 5,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessions = sessions
        self.locks = locks
        self.dialogs = dialogs
        self.deliver = deliver
        self.hooks = hooks
        self.default_region = default_region
        self.calendly_url = calendly_url
        self.burst_window = burst_window
        self.max_attempts = max_attempts
        self.clock = clock
        self.stats = Stats()
        self.bursts = BurstScheduler(self.process, burst_window)
        # One batch per step at a time: this also bounds the connections turns hold, so a
        # flood of conversations cannot exhaust the pool or starve the webhook.
        self._loads: GroupCommit[str, _Loaded | None] = GroupCommit(
            self._load_many, name="inbox-load"
        )
        self._commits: GroupCommit[_Turn, list[int]] = GroupCommit(
            self._commit_many, run_one=self._commit_one, name="inbox-commit"
        )

    # -- scheduling ------------------------------------------------------------------------

    def kick(self, *senders: str, wait: bool = True) -> None:
        """New rows of ``senders`` are in the inbox: handle them once their burst is over
        (``wait=False``: as soon as possible, for recovery)."""
        self.bursts.kick(*senders, wait=wait)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until every scheduled turn is done (tests, the sandbox, shutdown)."""
        await self.bursts.settle(timeout)

    async def close(self, timeout: float = 10.0) -> None:
        """Stop taking work; turns in progress finish, the rest is recovered on next start."""
        await self.bursts.close(timeout)
        for runner in (self._loads, self._commits):
            await runner.close()

    def pending_senders(self) -> set[str]:
        """Senders with a turn scheduled or running in this process."""
        return self.bursts.pending()

    async def recover(self) -> int:
        """Schedule every sender with unprocessed rows (startup: a crash after the 200).

        A sender whose newest row is younger than :meth:`_quiet_age` may be in a burst another
        live worker is still collecting: their turn here waits until that burst is surely
        over (then the other worker's turn holds their lock, or is done)."""
        now = self.clock()
        settled = now - self._quiet_age()
        newest = await self._unprocessed_senders(None)
        self.kick(*(s for s, at in newest.items() if at < settled), wait=False)
        for sender, at in newest.items():
            if at >= settled:
                self.bursts.defer(sender, (at - settled).total_seconds())
        if newest:
            log.info("inbox: recovering %d conversation(s) left unprocessed", len(newest))
        return len(newest)

    async def sweep(self, now: datetime) -> int:
        """Periodic job: retry rows that are still unprocessed a while after arriving
        (failed turns, lock timeouts, Redis down, another worker's crash); senders who wrote
        within :meth:`_quiet_age` are left to the worker collecting their burst."""
        waiting = await self._unprocessed_senders(now - self._quiet_age())
        senders = [s for s in waiting if s not in self.bursts.pending()]
        self.kick(*senders, wait=False)
        return len(senders)

    def _quiet_age(self) -> timedelta:
        """How long after a sender's newest message their burst is surely over everywhere:
        a burst lasts at most ``4 × burst_window`` (plus a release slot); a second of slack."""
        return timedelta(seconds=max(2.0, 4 * self.burst_window + 1.0))

    async def _unprocessed_senders(self, settled_before: datetime | None) -> dict[str, datetime]:
        """Senders with unprocessed rows and when their newest one arrived (only those whose
        newest arrived before ``settled_before``, if given)."""
        async with self.sessions() as db:
            return await inbox.unprocessed_senders(
                db, CHANNEL, max_attempts=self.max_attempts, settled_before=settled_before
            )

    # -- one turn ----------------------------------------------------------------------------

    async def process(self, sender: str) -> None:
        """Handle every unprocessed row of ``sender`` now, as one turn per batch, then
        deliver the replies, the lock released (they are committed: nothing is lost)."""
        outbox_ids: list[int] = []
        try:
            async with self.locks.lock(f"wa:{sender}") as lease:
                while await self._turn(sender, lease, outbox_ids):
                    pass
        except LockUnavailable as exc:
            # Nobody's failure: the rows stay unprocessed and uncharged; the sweep retries.
            log.warning("inbox: %s; the sweep retries", exc)
        if outbox_ids:
            try:
                await self.deliver(outbox_ids, self.clock())
            except Exception:  # the rows are stored: the outbox job sends what is pending
                log.exception("inbox: delivering the replies to %s failed", sender)

    async def _turn(self, sender: str, lease: Lease, outbox_ids: list[int]) -> bool:
        loaded = await self._loads.submit(sender)
        if loaded is None:
            return False
        try:
            now = self.clock()
            plan = await self._plan(loaded, now)
            if lease.lost:
                # Another worker may hold the sender now: commit nothing, charge nothing.
                log.warning("inbox: lost the lock of %s mid-turn; the sweep retries", sender)
                return False
            new_ids = await self._commits.submit(_Turn(loaded, plan, now))
        except RowsTakenElsewhere:
            # Another worker handled some of these rows meanwhile: the rest never failed.
            log.info("inbox: rows of %s were handled elsewhere; reloading", sender)
            return not lease.lost
        except Exception as exc:
            if lease.lost:
                log.warning("inbox: turn of %s failed after its lock was lost: %s", sender, exc)
                return False
            log.exception("inbox: turn of %s failed", sender)
            await self._failed(loaded.row_ids, exc)
            return False
        self.stats.turns += 1
        self.stats.replies += len(new_ids)
        outbox_ids += new_ids  # delivered once the lock is released (see process)
        return len(loaded.row_ids) >= BATCH

    async def _load_many(self, senders: list[str]) -> list[_Loaded | None]:
        """Each sender's unprocessed rows (at most ``BATCH``), lead, stored dialog state and
        suppression, for a batch of senders in three queries."""
        rows: dict[str, list[tuple[int, InboundMessage]]] = {}
        async with self.sessions() as db:
            found = await inbox.pending(
                db, CHANNEL, senders, batch=BATCH, max_attempts=self.max_attempts
            )
            for row_id, row_sender, payload in found:
                message = InboundMessage.from_json(payload)
                rows.setdefault(row_sender, []).append((row_id, message))
            # Who each sender is: the lead owning the strongest of their contact points.
            who = {s: sender_of(s, [m for _, m in mine]) for s, mine in rows.items()}
            owned = await owner_ids(db, {p for w in who.values() for p in w.points})
            lead_ids = {s: pick(w.points, owned) for s, w in who.items()}
            by_id: dict[int, tuple[Lead, dict[str, Any] | None]] = {}
            ids = {i for i in lead_ids.values() if i is not None}
            if ids:
                for found_lead, state in await conversations.leads_with_state(db, ids):
                    saved = dict(state) if state is not None else None
                    by_id[found_lead.id] = (found_lead, saved)
            known = {s: by_id[i] for s, i in lead_ids.items() if i is not None and i in by_id}
            # Every form each sender may be suppressed under: erased people's hashes too.
            addresses = {
                form: s
                for s, w in who.items()
                for a in (w.address, w.phone)
                if a
                for form in lookup_forms(db, [a])
            }
            found_addresses = await stored_among(db, addresses)
            suppressed = {addresses[a] for a in found_addresses}
        loaded: list[_Loaded | None] = []
        for sender in senders:
            mine = rows.get(sender)
            if not mine:
                loaded.append(None)
                continue
            lead, stored = known.get(sender, (None, None))
            loaded.append(
                _Loaded(
                    sender,
                    [row_id for row_id, _ in mine],
                    [message for _, message in mine],
                    lead,
                    stored,
                    sender in suppressed,
                    who[sender],
                    {p: owned[p] for p in who[sender].points if p in owned},
                )
            )
        return loaded

    async def _plan(self, loaded: _Loaded, now: datetime) -> _Plan:
        lead = loaded.lead
        if loaded.suppressed or (
            lead is not None and (lead.opted_out_at is not None or lead.bot_paused)
        ):
            return _Plan(None, [])  # opted out or a person is talking: record, never answer
        script, session = self._session(loaded, now)
        dialogs = self.dialogs
        turn = await take_turn(
            script,
            session,
            build_events(loaded.messages),
            dialogs.interpreter,
            now,
            icp=dialogs.icp,
        )
        return _Plan(turn.session, list(turn.actions), turn.prompt_version)

    def _session(self, loaded: _Loaded, now: datetime) -> tuple[Script, Session]:
        """The script and session of the turn: a stored conversation continues on the
        version it started with (the catalog's current one, logged, if that is gone); a
        new one starts on the current version of the default script; either then follows
        the prospect's language (:func:`dialogs.multilingual.follow_language`)."""
        catalog = self.dialogs.catalog
        # The script runs in the prospect's language (dialogs.multilingual): chosen from the
        # first message, moved (slots kept) when they clearly switch language.
        text = "\n".join(strip_ref(m.text) for m in loaded.messages if m.text)
        if loaded.stored is not None:
            script_id = str(loaded.stored.get("script_id"))
            script = catalog.get(script_id, str(loaded.stored.get("script_version")))
            if script is not None:
                stored = Session.model_validate(loaded.stored)
                if script.version != stored.script_version:  # its version is gone
                    stored = stored.model_copy(update={"script_version": script.version})
                script, stored = follow_language(catalog, script, stored, text, new=False)
                return experiments.resume(script, stored), stored  # its A/B variant, if any
            log.warning("inbox: script %r is gone; starting over", script_id)
        script = catalog.current(self.dialogs.default_script)
        name = loaded.lead.name if loaded.lead is not None else None
        name = name or loaded.messages[0].name
        script, _ = follow_language(
            catalog, script, Session.new(script, now, name=name), text, new=True
        )
        # Then an A/B variant, if the script (in their language) runs an experiment: drawn
        # by the sender's WhatsApp id, known before the lead exists, the same on every worker.
        return experiments.start(script, loaded.sender, now, name=name)

    async def _commit_many(self, turns: list[_Turn]) -> list[list[int]]:
        """Commit a batch of turns in one transaction; their new outbox rows, per turn.

        Rows every turn writes (the inbox rows marked processed, the inbound messages, the
        dialog sessions) are written once for the batch, as one statement each."""
        row_ids = [i for turn in turns for i in turn.loaded.row_ids]
        writes = _Writes()
        lead_ids = sorted({t.loaded.lead.id for t in turns if t.loaded.lead is not None})
        async with self.sessions.begin() as db:
            # The store's one lock order: the leads first, in id order, then the rest.
            await lock_leads(db, lead_ids)
            # The batch's known leads in one read: each turn then finds its own in the
            # session (no read per turn). Held here: the session's identity map is weak.
            held = await leads_by_ids(db, lead_ids) if lead_ids else []
            if await inbox.mark_processed(db, row_ids, turns[0].now) != len(row_ids):
                raise RowsTakenElsewhere("inbox rows were handled elsewhere meanwhile")
            outbox_ids = [await self._write_turn(db, turn, writes) for turn in turns]
            await writes.flush(db)
            del held
        self.stats.commits += 1
        return outbox_ids

    async def _commit_one(self, turn: _Turn) -> list[int]:
        (outbox_ids,) = await self._commit_many([turn])
        return outbox_ids

    async def _write_turn(self, db: DbSession, turn: _Turn, writes: _Writes) -> list[int]:
        """What a turn changes, in the caller's transaction (rows every turn writes go to
        ``writes``); its new outbox rows."""
        loaded, plan, now = turn.loaded, turn.plan, turn.now
        lead, created = await self._lead(db, loaded, now)
        _record_inbound(lead, loaded.messages, now, writes)
        revived: list[int] = []
        stops = any(isinstance(a, OptOut) for a in plan.actions)  # "stop" is no reply
        if not (created or stops or loaded.suppressed or lead.opted_out_at is not None):
            revived = await revive_dormant(
                db,
                lead,
                self.hooks,
                now=now,
                wamid=loaded.messages[-1].id,
                text=" ".join(m.text or m.choice_title or "" for m in loaded.messages),
            )
        if plan.session is None:
            return revived
        ctx = TurnContext(
            lead=lead,
            session=plan.session,
            key_base=f"wa:{loaded.messages[0].id}",
            reply_to=loaded.messages[-1].id,
            now=now,
            calendly_url=self.calendly_url,
            prompt_version=plan.prompt_version,
            address=loaded.who.address,  # replies go to exactly what Meta sent
        )
        if created:
            ctx.cancelled = True  # a lead made in this turn has no follow-ups to cancel
        else:
            await cancel_follow_ups(db, ctx, self.hooks, "prospect replied")
        await apply(db, ctx, plan.actions, self.hooks)
        writes.sessions.append(_session_row(lead.id, plan.session, now))
        return revived + ctx.outbox_ids

    async def _lead(self, db: DbSession, loaded: _Loaded, now: datetime) -> tuple[Lead, bool]:
        """The sender's lead, loaded in ``db``, and whether this turn created it
        (:func:`scheduler.pipeline.leads.lead_seen_at`: found by any of the sender's contact
        points, gaining those it lacks). A WhatsApp id that gives no phone number never stops
        the turn: the lead is made without a phone and flagged."""
        who = loaded.who

        def describe() -> LeadIn:
            first = loaded.messages[0]
            origin = attribute(first)
            attribution = dict(origin.details)
            if who.phone_underivable:
                attribution[PHONE_FLAG] = f"no phone number could be derived from {who.address}"
            return LeadIn(
                phone=who.phone,
                name=(first.name or "")[:200] or None,
                source=origin.source[:100],
                attribution=attribution,
            )

        return await lead_seen_at(
            db,
            who.points,
            known=loaded.lead.id if loaded.lead is not None else None,
            owned=loaded.owned,
            describe=describe,
            values={"last_inbound_at": max(m.timestamp for m in loaded.messages)},
            default_region=self.default_region,
            now=now,
            actor=ACTOR,
            reason="seen on WhatsApp",
        )

    async def _failed(self, row_ids: list[int], exc: BaseException) -> None:
        self.stats.failures += 1
        now = self.clock()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        async with self.sessions.begin() as db:
            # Rows out of attempts are given up: marked processed, the error kept for a human.
            count = await inbox.record_failure(
                db, row_ids, error, max_attempts=self.max_attempts, now=now
            )
        if count:
            self.stats.given_up += count
            log.error(
                "inbox: gave up on %d message(s) after %d attempts: %s",
                count,
                self.max_attempts,
                error,
            )


@dataclass(slots=True)
class _Writes:
    """Rows the turns of a batch write, stored with one statement each at the end."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    async def flush(self, db: DbSession) -> None:
        await conversations.record_messages(db, self.messages)
        # An upsert: no read of the rows we are about to overwrite.
        await conversations.save_sessions(db, self.sessions)


def _record_inbound(
    lead: Lead, messages: list[InboundMessage], now: datetime, writes: _Writes
) -> None:
    for message in messages:
        body = message.text or message.choice_title or message.choice_id or ""
        if not body and message.media_kind:
            body = f"[{message.media_kind}]"
        writes.messages.append(
            {
                "lead_id": lead.id,
                "channel": CHANNEL,
                "direction": "in",
                "external_id": message.id,
                "body": body,
                "payload": message.to_json(),
                "created_at": message.timestamp,
            }
        )
    # Changed only when they change: a lead created by this turn already has them.
    latest = max(m.timestamp for m in messages)
    if lead.last_inbound_at is None or latest > lead.last_inbound_at:
        lead.last_inbound_at = latest
        lead.updated_at = now
    if lead.whatsapp_window_closed_at is not None:
        lead.whatsapp_window_closed_at = None  # they wrote: the 24-hour window is open again
        lead.updated_at = now


def _session_row(lead_id: int, session: Session, now: datetime) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "script_id": session.script_id,
        "script_version": session.script_version,
        "state": session.model_dump(mode="json"),
        "updated_at": now,
    }
