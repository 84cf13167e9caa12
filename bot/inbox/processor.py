"""The inbox processor: turns stored inbound WhatsApp messages into exactly one reply per turn.

The webhook stores messages and kicks :meth:`InboxProcessor.kick`; the processor waits for
the sender's burst to end (``burst_window`` of quiet, at most ``4 × burst_window`` in all),
then, holding the sender's lock (``bot.locks``), handles every unprocessed row of theirs as
one turn in three phases:

1. read the rows, the lead and the dialog session (state is read only under the lock);
2. interpret and step the engine (no transaction open: an LLM call must not hold SQLite's
   write lock);
3. in ONE transaction: mark the rows processed, record the messages, create or update the
   lead, apply the actions (outbox rows keyed by the wamid), save the session.

After the commit the new outbox rows are delivered. Each of the three database steps (load,
commit, deliver) is a group commit (:class:`bot.batching.GroupRunner`): the turns of many
conversations that reach a step together share one transaction, so a flood of new
conversations costs a few round trips per batch instead of twenty per turn. A batch whose
transaction fails is redone turn by turn, so one bad turn fails alone.

A crash anywhere before the commit
leaves the rows unprocessed; :meth:`recover` (startup) and :meth:`sweep` (periodic) pick them
up again. A turn that fails records ``attempts`` and ``error`` on its rows and is retried
until ``max_attempts``, then given up with the error kept.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.batching import GroupRunner
from bot.inbox.bursts import BurstScheduler
from bot.inbox.effects import TurnContext, apply, cancel_follow_ups, quiet_follow_ups
from bot.inbox.hooks import Hooks
from bot.inbox.turns import build_events
from bot.locks import KeyedLock, LockTimeout
from bot.whatsapp.attribution import attribute
from bot.whatsapp.envelope import InboundMessage
from dialogs.actions import MESSAGE_ACTIONS, Action
from dialogs.engine import step
from dialogs.events import TextReceived
from dialogs.icp import Icp
from dialogs.interpretation import Interpreter
from dialogs.script import Script
from dialogs.session import Session
from scheduler.db import insert_or_ignore
from scheduler.leads import Contact, LeadIn, build_lead, create_lead, intake
from scheduler.models import DialogSessionRow, InboxItem, Lead, Message, Suppression, utcnow
from scheduler.suppressions import normalize_address

log = logging.getLogger("leadbot.inbox")
CHANNEL = "whatsapp"
ACTOR = "whatsapp"  # who created the lead, in its audit row
BATCH = 50  # rows per turn; a longer backlog of one sender is handled over several turns
_MESSAGES = cast(Table, Message.__table__)

# The statements every batch runs, built once (building them costs more than running them).
_INBOX = cast(Table, InboxItem.__table__)
_RANKED = (
    select(
        _INBOX.c.id,
        _INBOX.c.sender,
        _INBOX.c.payload,
        func.row_number().over(partition_by=_INBOX.c.sender, order_by=_INBOX.c.id).label("n"),
    )
    .where(
        _INBOX.c.channel == CHANNEL,
        _INBOX.c.sender.in_(bindparam("senders", expanding=True)),
        _INBOX.c.processed_at.is_(None),
        _INBOX.c.attempts < bindparam("max_attempts"),
    )
    .subquery()
)
# Each sender's oldest unprocessed rows, at most BATCH of them.
_PENDING = (
    select(_RANKED.c.id, _RANKED.c.sender, _RANKED.c.payload)
    .where(_RANKED.c.n <= BATCH)
    .order_by(_RANKED.c.id)
)
_KNOWN = (
    select(Lead, DialogSessionRow.state)
    .outerjoin(DialogSessionRow, DialogSessionRow.lead_id == Lead.id)
    .where(Lead.phone.in_(bindparam("phones", expanding=True)))
)
_SUPPRESSED = select(Suppression.address).where(
    Suppression.address.in_(bindparam("addresses", expanding=True))
)
_MARK_PROCESSED = (
    update(_INBOX)
    .where(_INBOX.c.id.in_(bindparam("ids", expanding=True)), _INBOX.c.processed_at.is_(None))
    .values(processed_at=bindparam("now"), error=None)
)

Deliver = Callable[[Sequence[int], datetime], Awaitable[Mapping[int, str]]]


@dataclass(frozen=True, slots=True)
class Dialogs:
    """The scripts and profile conversations run on."""

    scripts: Mapping[str, Script]
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
        sessions: async_sessionmaker[AsyncSession],
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
        self._loads: GroupRunner[str, _Loaded | None] = GroupRunner(
            self._load_many, name="inbox-load"
        )
        self._commits: GroupRunner[_Turn, list[int]] = GroupRunner(
            self._commit_many, run_one=self._commit_one, name="inbox-commit"
        )
        self._deliveries: GroupRunner[list[int], None] = GroupRunner(
            self._deliver_many, name="inbox-deliver"
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
        for runner in (self._loads, self._commits, self._deliveries):
            await runner.close()

    def pending_senders(self) -> set[str]:
        """Senders with a turn scheduled or running in this process."""
        return self.bursts.pending()

    async def recover(self) -> int:
        """Schedule every sender with unprocessed rows (startup: a crash after the 200)."""
        senders = await self._unprocessed_senders(None)
        self.kick(*senders, wait=False)
        if senders:
            log.info("inbox: recovering %d conversation(s) left unprocessed", len(senders))
        return len(senders)

    async def sweep(self, now: datetime) -> int:
        """Periodic job: retry rows that are still unprocessed a while after arriving
        (failed turns, lock timeouts, another worker's crash)."""
        older_than = now - timedelta(seconds=max(2.0, 4 * self.burst_window))
        waiting = await self._unprocessed_senders(older_than)
        senders = [s for s in waiting if s not in self.bursts.pending()]
        self.kick(*senders, wait=False)
        return len(senders)

    async def _unprocessed_senders(self, older_than: datetime | None) -> list[str]:
        query = (
            select(InboxItem.sender)
            .distinct()
            .where(
                InboxItem.channel == CHANNEL,
                InboxItem.processed_at.is_(None),
                InboxItem.attempts < self.max_attempts,
            )
        )
        if older_than is not None:
            query = query.where(InboxItem.received_at < older_than)
        async with self.sessions() as db:
            return list(await db.scalars(query))

    # -- one turn ----------------------------------------------------------------------------

    async def process(self, sender: str) -> None:
        """Handle every unprocessed row of ``sender`` now, as one turn per batch."""
        try:
            async with self.locks.lock(f"wa:{sender}"):
                while await self._turn(sender):
                    pass
        except LockTimeout as exc:
            log.warning("inbox: %s; the sweep retries", exc)

    async def _turn(self, sender: str) -> bool:
        loaded = await self._loads.submit(sender)
        if loaded is None:
            return False
        try:
            now = self.clock()
            plan = await self._plan(loaded, now)
            outbox_ids = await self._commits.submit(_Turn(loaded, plan, now))
        except Exception as exc:
            log.exception("inbox: turn of %s failed", sender)
            await self._failed(loaded.row_ids, exc)
            return False
        self.stats.turns += 1
        self.stats.replies += len(outbox_ids)
        if outbox_ids:
            # Still under the sender's lock: a later turn of theirs never overtakes this reply.
            await self._deliveries.submit(outbox_ids)
        return len(loaded.row_ids) >= BATCH

    async def _load_many(self, senders: list[str]) -> list[_Loaded | None]:
        """Each sender's unprocessed rows (at most ``BATCH``), lead, stored dialog state and
        suppression, for a batch of senders in three queries."""
        rows: dict[str, list[tuple[int, InboundMessage]]] = {}
        async with self.sessions() as db:
            found = await db.execute(
                _PENDING, {"senders": senders, "max_attempts": self.max_attempts}
            )
            for row in found:
                message = InboundMessage.from_json(row.payload)
                rows.setdefault(row.sender, []).append((row.id, message))
            phones = [s for s in rows if s.startswith("+")]
            known: dict[str, tuple[Lead, dict[str, Any] | None]] = {}
            suppressed: set[str] = set()
            if phones:
                for found_lead in await db.execute(_KNOWN, {"phones": phones}):
                    lead, state = found_lead.Lead, found_lead.state
                    assert lead.phone is not None
                    known[lead.phone] = (lead, dict(state) if state is not None else None)
                addresses = {normalize_address(p): p for p in phones}
                found_addresses = await db.scalars(_SUPPRESSED, {"addresses": list(addresses)})
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
                )
            )
        return loaded

    async def _plan(self, loaded: _Loaded, now: datetime) -> _Plan:
        lead = loaded.lead
        if loaded.suppressed or (
            lead is not None and (lead.opted_out_at is not None or lead.bot_paused)
        ):
            return _Plan(None, [])  # opted out or a person is talking: record, never answer
        if not loaded.sender.startswith("+"):
            return _Plan(None, [])  # BSUID only: no phone to make a lead of (yet)
        script, session = self._session(loaded, now)
        actions: list[Action] = []
        message: Action | None = None
        decided = False
        prompt_version: str | None = None
        for raw_event in build_events(loaded.messages):
            event = raw_event
            if isinstance(raw_event, TextReceived):
                interpretation = await self.dialogs.interpreter.interpret(
                    script, session, raw_event.text, now
                )
                prompt_version = interpretation.prompt_version or prompt_version
                event = TextReceived(raw_event.text, interpretation)
            was_finished = session.finished
            result = step(script, session, event, now, icp=self.dialogs.icp)
            session = result.session
            for action in result.actions:
                if not isinstance(action, MESSAGE_ACTIONS):
                    actions.append(action)
                elif not decided:
                    # One reply per turn: the latest, unless an earlier step closed the
                    # conversation (its outcome beats a later "thanks, we have all we need").
                    message = action
            decided = decided or (session.finished and not was_finished)
        actions += quiet_follow_ups(script, session)  # before the reply: touches first
        if message is not None:
            actions.append(message)
        return _Plan(session, actions, prompt_version)

    def _session(self, loaded: _Loaded, now: datetime) -> tuple[Script, Session]:
        scripts = self.dialogs.scripts
        if loaded.stored is not None:
            script = scripts.get(str(loaded.stored.get("script_id")))
            if script is not None:
                return script, Session.model_validate(loaded.stored)
            log.warning("inbox: script %r is gone; starting over", loaded.stored.get("script_id"))
        script = scripts[self.dialogs.default_script]
        name = loaded.lead.name if loaded.lead is not None else None
        return script, Session.new(script, now, name=name or loaded.messages[0].name)

    async def _commit_many(self, turns: list[_Turn]) -> list[list[int]]:
        """Commit a batch of turns in one transaction; their new outbox rows, per turn.

        Rows every turn writes (the inbox rows marked processed, the inbound messages, the
        dialog sessions) are written once for the batch, as one statement each."""
        row_ids = [i for turn in turns for i in turn.loaded.row_ids]
        writes = _Writes()
        async with self.sessions.begin() as db:
            claimed = await db.execute(_MARK_PROCESSED, {"ids": row_ids, "now": turns[0].now})
            if claimed.rowcount != len(row_ids):  # type: ignore[attr-defined]
                raise RuntimeError("inbox rows were handled elsewhere meanwhile")
            outbox_ids = [await self._write_turn(db, turn, writes) for turn in turns]
            await writes.flush(db)
        self.stats.commits += 1
        return outbox_ids

    async def _commit_one(self, turn: _Turn) -> list[int]:
        (outbox_ids,) = await self._commit_many([turn])
        return outbox_ids

    async def _write_turn(self, db: AsyncSession, turn: _Turn, writes: _Writes) -> list[int]:
        """What a turn changes, in the caller's transaction (rows every turn writes go to
        ``writes``); its new outbox rows."""
        loaded, plan, now = turn.loaded, turn.plan, turn.now
        if not loaded.sender.startswith("+"):
            log.warning("inbox: %s has no phone number: kept, not answered", loaded.sender)
            return []
        lead, created = await self._lead(db, loaded, now)
        _record_inbound(lead, loaded.messages, now, writes)
        if plan.session is None:
            return []
        ctx = TurnContext(
            lead=lead,
            session=plan.session,
            key_base=f"wa:{loaded.messages[0].id}",
            reply_to=loaded.messages[-1].id,
            now=now,
            calendly_url=self.calendly_url,
            prompt_version=plan.prompt_version,
        )
        if created:
            ctx.cancelled = True  # a lead made in this turn has no follow-ups to cancel
        else:
            await cancel_follow_ups(db, ctx, self.hooks, "prospect replied")
        await apply(db, ctx, plan.actions, self.hooks)
        writes.sessions.append(_session_row(lead.id, plan.session, now))
        return ctx.outbox_ids

    async def _deliver_many(self, batches: list[list[int]]) -> list[None]:
        await self.deliver([i for ids in batches for i in ids], self.clock())
        return [None] * len(batches)

    async def _lead(self, db: AsyncSession, loaded: _Loaded, now: datetime) -> tuple[Lead, bool]:
        """The sender's lead, loaded in ``db``, and whether this turn created it."""
        if loaded.lead is not None:
            lead = await db.get(Lead, loaded.lead.id)
            if lead is not None:
                return lead, False
        first = loaded.messages[0]
        origin = attribute(first)
        data = LeadIn(
            phone=loaded.sender,
            name=(first.name or "")[:200] or None,
            source=origin.source[:100],
            attribution=origin.details,
        )
        if loaded.lead is None:
            # Nobody had this number when the turn was loaded: insert straight away (a
            # conflict means someone created the lead since, and intake finds it).
            values = build_lead(data, Contact.of(data, self.default_region), now)
            values["last_inbound_at"] = max(m.timestamp for m in loaded.messages)
            lead = await create_lead(db, values, actor=ACTOR)
            if lead is not None:
                return lead, True
        result = await intake(db, data, default_region=self.default_region, now=now, actor=ACTOR)
        return result.lead, result.created

    async def _failed(self, row_ids: list[int], exc: BaseException) -> None:
        self.stats.failures += 1
        now = self.clock()
        error = f"{type(exc).__name__}: {exc}"[:2000]
        async with self.sessions.begin() as db:
            await db.execute(
                update(InboxItem)
                .where(InboxItem.id.in_(row_ids), InboxItem.processed_at.is_(None))
                .values(attempts=InboxItem.attempts + 1, error=error)
            )
            # Rows out of attempts are given up: marked processed, the error kept for a human.
            given_up = await db.execute(
                update(InboxItem)
                .where(
                    InboxItem.id.in_(row_ids),
                    InboxItem.processed_at.is_(None),
                    InboxItem.attempts >= self.max_attempts,
                )
                .values(processed_at=now, error=func.coalesce(InboxItem.error, "") + " (gave up)")
            )
        count = int(given_up.rowcount)  # type: ignore[attr-defined]
        if count:
            self.stats.given_up += count
            log.error("inbox: gave up on %d message(s) after %d attempts: %s", count,
                      self.max_attempts, error)  # fmt: skip


@dataclass(slots=True)
class _Writes:
    """Rows the turns of a batch write, stored with one statement each at the end."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)

    async def flush(self, db: AsyncSession) -> None:
        if self.messages:
            await db.execute(insert_or_ignore(db, _MESSAGES, ["external_id"]), self.messages)
        if self.sessions:
            # An upsert: no read of the rows we are about to overwrite.
            await db.execute(_session_upsert(db.get_bind().dialect.name), self.sessions)


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


@functools.cache
def _session_upsert(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """The dialog-session upsert, built once per backend and run with parameters."""
    table = cast(Table, DialogSessionRow.__table__)
    statement = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    changed = {c: statement.excluded[c] for c in ("script_id", "script_version", "state",
                                                  "updated_at")}  # fmt: skip
    return statement.on_conflict_do_update(index_elements=["lead_id"], set_=changed)
