"""The chaos run's verdict: read the store, Redis and the fake Graph API's log; count.

Every figure is computed from evidence outside the processes under test (the database
rows they left, the requests the fake received, what each prospect sent and when), and
each assertion names the rows that broke it, so a failing run says where to look.

The assertions (all must be 0):

- ``sent twice``: an outbox row whose message Graph accepted twice, or two outbox rows
  answering the same inbound message (one logical reply) both delivered. Rows whose outcome
  is unknown (``uncertain``) are counted apart, with how many of them Graph did accept;
- ``sends no row explains``: Graph accepted a message whose wamid no outbox row recorded and
  that matches no uncertain row (a lost wamid: the row may be sent again);
- ``unanswered``: an inbound message handled without a reply and without a recorded reason
  (opted out, handed to a person, given up with its error), or answered 200 and not stored;
- ``stuck``: inbox rows never processed, outbox rows still ``pending`` or ``sending``
  without their request having reached Graph, touches still ``claimed``, per-lead locks
  still held in Redis, after the drain;
- ``duplicate leads``: two leads for one phone; ``missing leads``: a prospect with none;
- ``illegal moves``: a stage event not in ``scheduler.pipeline.stages.ALLOWED_MOVES``, not starting
  where the previous one ended, or a move to/from lost without a reason;
- ``touches slipped``: a touch handed to the outbox more than a sweep period plus the lease
  after it was due (or approved), or still pending that long after (a send the vendor refused
  and the outbox retried is the outbox's delay, counted apart);
- ``after opt-out``: a message Graph accepted for a prospect after their STOP, other than
  the opt-out confirmation;
- ``slow replies``: a prospect waited more than 30 s for an answer, unless one of the
  messages to them in that time hung at Graph (their own hanging send).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.chaos_traffic import Prospect, graph_text
from scheduler.pipeline.stages import ALLOWED_MOVES
from tests.support.fakes.graph_api import GraphRequest

SLOW_REPLY_SECONDS = 30.0
OPT_OUT_WORDS = "won't hear from us"


@dataclass
class Audit:
    """Figures and failures of one run."""

    figures: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)  # assertion -> examples
    waits: list[float] = field(default_factory=list)
    reached: set[int] = field(default_factory=set)  # outbox ids whose message Graph accepted

    def fail(self, assertion: str, example: str) -> None:
        """Record one violation of ``assertion``."""
        self.failures.setdefault(assertion, []).append(example)

    def count(self, assertion: str) -> int:
        """How many violations of ``assertion`` were found."""
        return len(self.failures.get(assertion, []))


ASSERTIONS = [
    "sent twice",
    "sends no row explains",
    "unanswered",
    "stuck",
    "duplicate leads",
    "missing leads",
    "illegal moves",
    "touches slipped",
    "after opt-out",
    "slow replies",
]


async def _rows(engine: AsyncEngine, sql: str) -> list[Any]:
    async with engine.connect() as connection:
        return list(await connection.execute(text(sql)))


async def audit(
    engine: AsyncEngine,
    graph_requests: list[GraphRequest],
    prospects: list[Prospect],
    *,
    tolerance: timedelta,
    end: datetime,
    hang_window: float,
    lock_keys: list[str],
    kills: int = 0,
) -> Audit:
    """Check a finished run (see the module docstring). ``tolerance`` is a sweep period plus
    the lease; ``end`` when the audit started (DB clock); ``hang_window`` how long before a
    reply a hanging send to the same prospect excuses a slow one; ``lock_keys`` the Redis
    lock keys of the run's prospects still present (and Postgres sessions still holding a
    transaction open or waiting for a lock)."""
    result = Audit()
    leads = await _rows(
        engine, "SELECT id, phone, email, stage, opted_out_at, bot_paused FROM leads"
    )
    events = await _rows(
        engine,
        "SELECT id, lead_id, from_stage, to_stage, reason, actor "
        "FROM stage_events ORDER BY lead_id, id",
    )
    inbox = await _rows(
        engine,
        "SELECT id, external_id, sender, processed_at, attempts, error "
        "FROM inbox WHERE channel = 'whatsapp' ORDER BY id",
    )
    outbox = await _rows(
        engine,
        "SELECT id, key, lead_id, channel, recipient, payload, state, "
        "attempts, external_id, error, next_attempt_at, updated_at, sending_started_at "
        "FROM outbox ORDER BY id",
    )
    # A touch is on time when the scheduler handed it to the outbox on time (the outbox row's
    # creation); retries of a send the vendor refused are the outbox's, counted apart.
    touches = await _rows(
        engine,
        "SELECT t.*, o.created_at AS handed_at, o.attempts AS send_attempts FROM touches t "
        "LEFT JOIN outbox o ON o.id = t.outbox_id ORDER BY t.id",
    )

    _deliveries(result, graph_requests, outbox)
    _answers(result, inbox, outbox, leads, prospects)
    _stuck(result, inbox, outbox, touches, lock_keys, kills=kills)
    _leads(result, leads, prospects)
    _moves(result, events)
    _touches(result, touches, tolerance, end)
    _opt_outs(result, graph_requests, prospects, leads)
    _waits(result, graph_requests, prospects, hang_window)
    result.figures["leads by stage"] = dict(Counter(lead.stage for lead in leads))
    result.figures["outbox by state"] = dict(Counter(f"{r.channel}:{r.state}" for r in outbox))
    result.figures["touches by status"] = dict(Counter(t.status for t in touches))
    return result


def _deliveries(result: Audit, requests: list[GraphRequest], outbox: list[Any]) -> None:
    by_wamid = {r.external_id: r for r in outbox if r.channel == "whatsapp" and r.external_id}
    accepted = [r for r in requests if r.accepted and "type" in r.body]
    result.figures["graph requests"] = len([r for r in requests if "type" in r.body])
    result.figures["graph accepted"] = len(accepted)
    result.figures["graph faults"] = dict(
        Counter(
            "hang" if r.reply.delay else str(r.reply.status)
            for r in requests
            if "type" in r.body and (r.reply.delay or r.reply.status != 200)
        )
    )
    delivered: dict[int, int] = Counter()  # outbox id -> accepted sends
    orphans: list[GraphRequest] = []
    for request in accepted:
        row = by_wamid.get(request.wamid)
        if row is not None:
            delivered[row.id] += 1
        else:
            orphans.append(request)
    # An orphan is an accepted send whose answer the sender never read (a hang): it belongs
    # to an uncertain (or still sending) row with the same recipient and text.
    by_recipient: dict[str, list[Any]] = defaultdict(list)
    for row in outbox:
        if row.channel == "whatsapp":
            by_recipient[row.recipient.lstrip("+")].append(row)
    uncertain_delivered = 0
    for request in orphans:
        to = str(request.body.get("to") or "").lstrip("+")
        shown = graph_text(request.body)
        rows = by_recipient.get(to, [])
        same = [r for r in rows if _row_text(r.payload) == shown]
        open_rows = [
            r for r in rows if r.state in ("uncertain", "sending") and not delivered[r.id]
        ]
        # The same text first; else any open row of theirs (a template fallback shows
        # other words than the row's text).
        match = [r for r in open_rows if r in same] or open_rows
        if match:
            delivered[match[0].id] += 1
            uncertain_delivered += 1
        elif same:
            delivered[same[0].id] += 1  # a second copy of a row that went out already
        else:
            result.fail("sends no row explains", f"{request.wamid} to {to}: {shown[:40]!r}")
    result.reached = {row_id for row_id, times in delivered.items() if times}
    for row_id, times in delivered.items():
        if times > 1:
            result.fail("sent twice", f"outbox {row_id} accepted by Graph {times} times")
    answers: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in outbox:
        reply_to = (row.payload or {}).get("reply_to")
        if (
            row.channel == "whatsapp"
            and reply_to
            and row.key.startswith("wa:")
            and (delivered[row.id] or row.state == "sent")
        ):
            answers[(row.recipient, reply_to)].append(row.id)
    for (recipient, reply_to), ids in answers.items():
        if len(ids) > 1:
            result.fail("sent twice", f"{recipient}: rows {ids} all answer {reply_to}")
    for state in ("uncertain", "sending"):
        rows = [r for r in outbox if r.state == state and r.channel == "whatsapp"]
        reached = sum(1 for r in rows if delivered[r.id])
        result.figures[f"whatsapp {state} rows (Graph accepted / never reached)"] = (
            f"{len(rows)} ({reached} / {len(rows) - reached})"
        )
    result.figures["accepted sends matched to rows without a wamid"] = uncertain_delivered


def _hms(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%H:%M:%S}"


def _row_text(payload: Any) -> str:
    """What Graph shows for an outbox payload (a template shows its parameters)."""
    payload = payload or {}
    if payload.get("kind") == "template" and payload.get("params"):
        return " ".join(str(p) for p in payload["params"])
    return str(payload.get("text", ""))


def _turns(inbox: list[Any]) -> dict[str, list[list[Any]]]:
    """Each sender's handled turns: inbox rows processed together (same ``processed_at``)."""
    turns: dict[str, dict[Any, list[Any]]] = defaultdict(dict)
    for row in inbox:
        if row.processed_at is not None:
            turns[row.sender].setdefault(row.processed_at, []).append(row)
    return {sender: list(by_time.values()) for sender, by_time in turns.items()}


def _answers(
    result: Audit, inbox: list[Any], outbox: list[Any], leads: list[Any], prospects: list[Prospect]
) -> None:
    ours = {p.phone for p in prospects}
    replies: dict[str, list[Any]] = defaultdict(list)  # first wamid of a turn -> rows
    for row in outbox:
        if row.key.startswith("wa:"):
            replies[row.key[3:].rsplit(":", 1)[0]].append(row)
    lead_by_phone = {lead.phone: lead for lead in leads if lead.phone}
    reasons: Counter[str] = Counter()
    handled = 0
    for sender, turns in _turns(inbox).items():
        if sender not in ours:
            continue
        lead = lead_by_phone.get(sender)
        for turn in turns:
            handled += 1
            rows = [r for m in turn for r in replies.get(m.external_id, [])]
            states = {r.state for r in rows}
            if states & {"sent", "uncertain"}:
                reasons["answered" if "sent" in states else "answer uncertain"] += 1
            elif "failed" in states:
                reasons["answer failed (error kept)"] += 1
            elif rows:
                reasons["answer still queued"] += 1  # counted under stuck
            elif any(m.error for m in turn):
                reasons["given up (error kept)"] += 1
            elif lead is not None and lead.opted_out_at is not None:
                reasons["opted out"] += 1
            elif lead is not None and lead.bot_paused:
                reasons["handed to a person"] += 1
            else:
                result.fail("unanswered", f"{sender}: {[m.external_id for m in turn]}")
    stored = {row.external_id for row in inbox}
    for prospect in prospects:
        for said in prospect.turns:
            for wamid in said.delivered:
                if wamid not in stored:
                    result.fail(
                        "unanswered",
                        f"{prospect.phone}: {wamid} got its 200 but is not in the inbox",
                    )
    result.figures["turns handled"] = handled
    result.figures["turn outcomes"] = dict(reasons)


def _stuck(
    result: Audit,
    inbox: list[Any],
    outbox: list[Any],
    touches: list[Any],
    lock_keys: list[str],
    *,
    kills: int = 0,
) -> None:
    for row in inbox:
        if row.processed_at is None:
            result.fail(
                "stuck",
                f"inbox {row.id} ({row.sender}) unprocessed, "
                f"{row.attempts} attempts, error {row.error!r}",
            )
    # A worker killed after marking a send started and before its request left leaves the
    # row ``sending``: at most once means nobody may resend it (whether it left is unknown
    # to the store), and the reaper makes it uncertain, for a person, after the send lease.
    # A live worker always records an outcome (timeouts included), so at most one such row
    # a kill is the price of the guarantee; more would be a bug.
    in_flight = [
        row
        for row in outbox
        if row.state == "sending"
        and row.id not in result.reached
        and getattr(row, "sending_started_at", None)
    ]
    result.figures["sends started when their process was killed (never reached)"] = len(in_flight)
    if len(in_flight) > kills:
        for row in in_flight:
            result.fail("stuck", f"outbox {row.id} {row.key} started, never sent, no kill")
    excused = {row.id for row in in_flight}  # failed above when too many
    for row in outbox:
        # A row left ``sending`` whose request reached Graph is an unknown outcome not yet
        # marked uncertain (bookkeeping, not a stuck conversation); one that never reached
        # Graph and was never started was never sent and nothing will send it.
        if row.id in excused:
            continue
        if row.state == "pending" or (row.state == "sending" and row.id not in result.reached):
            result.fail(
                "stuck",
                f"outbox {row.id} {row.key} still {row.state} (attempts {row.attempts}, "
                f"next {_hms(getattr(row, 'next_attempt_at', None))}, "
                f"since {_hms(getattr(row, 'updated_at', None))}, error {row.error!r:.80})",
            )
    for touch in touches:
        if touch.status == "claimed":
            result.fail("stuck", f"touch {touch.id} still claimed")
    for key in lock_keys:  # Redis lock keys, or Postgres sessions holding rows
        result.fail("stuck", key if key.startswith("Postgres") else f"Redis lock {key} still held")
    result.figures["inbox rows"] = len(inbox)
    result.figures["inbox given up"] = sum(1 for r in inbox if r.error and r.processed_at)


def _leads(result: Audit, leads: list[Any], prospects: list[Prospect]) -> None:
    phones = Counter(lead.phone for lead in leads if lead.phone)
    for phone, count in phones.items():
        if count > 1:
            result.fail("duplicate leads", f"{phone}: {count} leads")
    for prospect in prospects:
        if prospect.turns and prospect.phone not in phones:
            result.fail("missing leads", f"{prospect.phone} wrote but has no lead")
    result.figures["leads"] = len(leads)


def _moves(result: Audit, events: list[Any]) -> None:
    previous: dict[int, str] = {}
    for event in events:
        before = previous.get(event.lead_id)
        where = f"lead {event.lead_id} event {event.id} {event.from_stage}->{event.to_stage}"
        if event.from_stage is None:
            if before is not None:
                result.fail("illegal moves", f"{where}: a second creation")
        elif event.from_stage != before:
            result.fail("illegal moves", f"{where}: the lead was {before}")
        elif event.to_stage not in {s.value for s in ALLOWED_MOVES.get(event.from_stage, ())}:
            result.fail("illegal moves", f"{where}: not an allowed move")
        elif "lost" in (event.from_stage, event.to_stage) and not (event.reason or "").strip():
            result.fail("illegal moves", f"{where}: no reason")
        previous[event.lead_id] = event.to_stage
    result.figures["stage events"] = len(events)


def _touches(result: Audit, touches: list[Any], tolerance: timedelta, end: datetime) -> None:
    slips: list[float] = []
    retried = 0
    for touch in touches:
        due = touch.due_at
        approved = getattr(touch, "approved_at", None)
        if approved is not None and approved > due:
            due = approved
        handed = getattr(touch, "handed_at", None) or getattr(touch, "sent_at", None)
        if handed is not None:
            slip = (handed - due).total_seconds()
            slips.append(slip)
            if (getattr(touch, "send_attempts", None) or 0) > 1:
                retried += 1
            if slip > tolerance.total_seconds():
                result.fail(
                    "touches slipped",
                    f"touch {touch.id} {touch.sequence}/{touch.step} "
                    f"handed to the outbox {slip:.1f}s after due",
                )
        elif touch.status == "pending" and end - due > tolerance:
            result.fail(
                "touches slipped",
                f"touch {touch.id} {touch.sequence}/{touch.step} "
                f"pending {(end - due).total_seconds():.1f}s after due",
            )
    result.figures["touches sent"] = len(slips)
    result.figures["touch sends retried by the outbox"] = retried
    if slips:
        result.figures["touch delay p50/max s"] = (
            f"{statistics.median(slips):.1f} / {max(slips):.1f}"
        )


def _opt_outs(
    result: Audit, requests: list[GraphRequest], prospects: list[Prospect], leads: list[Any]
) -> None:
    """Messages Graph accepted for a prospect after their opt-out was recorded (the lead's
    ``opted_out_at``), other than the confirmation. A reply already on its way when the
    STOP arrived is not one, a follow-up or a retry sent after it is."""
    said_stop = {p.phone for p in prospects for t in p.turns if t.stop}
    opted_out = {
        lead.phone: lead.opted_out_at.timestamp()
        for lead in leads
        if lead.phone and lead.opted_out_at is not None
    }
    result.figures["prospects who said STOP / opted out"] = (
        f"{len(said_stop)} / {len(said_stop & set(opted_out))}"
    )
    for request in requests:
        to = "+" + str(request.body.get("to") or "").lstrip("+")
        since = opted_out.get(to)
        if since is None or not request.accepted or "type" not in request.body:
            continue
        if request.wall > since + 0.05 and OPT_OUT_WORDS not in graph_text(request.body):
            result.fail(
                "after opt-out",
                f"{to}: {graph_text(request.body)[:60]!r} "
                f"{request.wall - since:.1f}s after the opt-out",
            )


def _waits(
    result: Audit, requests: list[GraphRequest], prospects: list[Prospect], hang_window: float
) -> None:
    received: dict[str, list[GraphRequest]] = defaultdict(list)
    for request in requests:
        if "type" in request.body:
            received[str(request.body.get("to") or "").lstrip("+")].append(request)
    unanswered_turns = 0
    excused = 0
    for prospect in prospects:
        mine = received.get(prospect.wa_id, [])
        for turn in prospect.turns:
            if not turn.expects_reply:
                continue
            reply = next((r for r in mine if r.accepted and r.at > turn.sent_at), None)
            if reply is None:
                unanswered_turns += 1
                result.fail("slow replies", f"{prospect.phone}: {turn.texts} never answered")
                continue
            wait = reply.at - turn.sent_at
            result.waits.append(wait)
            if wait <= SLOW_REPLY_SECONDS:
                continue
            hung = any(
                r.reply.delay and turn.sent_at - hang_window <= r.at <= reply.at for r in mine
            )
            if hung:
                excused += 1
            else:
                result.fail("slow replies", f"{prospect.phone}: {turn.texts} waited {wait:.1f}s")
    waits = sorted(result.waits)
    result.figures["prospect turns"] = sum(len(p.turns) for p in prospects)
    result.figures["turns never answered"] = unanswered_turns
    result.figures[f"waits > {SLOW_REPLY_SECONDS:.0f}s behind own hang"] = excused
    if waits:
        p99 = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
        result.figures["reply wait p50/p99/max s"] = (
            f"{statistics.median(waits):.2f} / {p99:.2f} / {waits[-1]:.2f}"
        )
    result.figures["prospect outcomes"] = dict(Counter(p.outcome for p in prospects))
