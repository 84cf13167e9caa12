"""Store what webhook bodies carried, committed before their 200.

Messages go to the durable inbox (UNIQUE ``(channel, external_id)`` = the wamid, inserted
with ON CONFLICT DO NOTHING: Meta's retries and duplicates change nothing). Statuses update
the outbox rows they are about (matched on the wamid Meta gave us when we sent); statuses
arrive out of order, so a later one never overwrites a further one (``read`` beats
``delivered``; ``failed`` beats everything). A status about a send whose wamid is not
recorded yet is parked and applied once it is (:mod:`scheduler.store.parked_statuses`). A
``failed`` with 131047 means the 24-hour customer-service window is closed: recorded on
the lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.whatsapp.envelope import Envelope, StatusUpdate
from scheduler.group_commit import GroupCommit
from scheduler.store import Engine, SyncConnection, SyncEngine, parked_statuses
from scheduler.store import outbox as outbox_store
from scheduler.store.engine import run_in_greenlet
from scheduler.store.inbox import InboxAppender, Received, append
from scheduler.store.leads import close_window_unless_newer, lead_id_by_phone
from scheduler.store.models import utcnow

CHANNEL = "whatsapp"
WINDOW_CLOSED = 131047


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one body changed: senders with new inbox rows, and counts."""

    senders: tuple[str, ...]
    new_messages: int
    duplicates: int
    statuses: int


async def ingest(engine: Engine, envelope: Envelope, now: datetime) -> Ingested:
    """Store ``envelope``'s messages and apply its statuses (see :func:`ingest_many`)."""
    (result,) = await ingest_many(engine, [envelope], now)
    return result


async def ingest_many(
    engine: Engine,
    envelopes: list[Envelope],
    now: datetime,
    *,
    appender: InboxAppender | None = None,
) -> list[Ingested]:
    """Store several bodies at once (group commit); one result per body.

    Statuses first, in one transaction (Core statements on a connection), then the messages,
    appended on the driver connection (:mod:`scheduler.store.inbox`: this runs for every
    webhook, and SQLAlchemy's per-transaction machinery cost several times the statements).
    Both are committed before any body gets its 200. If the messages fail after the statuses
    were applied, applying those statuses again (the retry) changes nothing; the other way
    round, messages stored without a 200 would be retried as duplicates and never kicked.
    The whole thing runs in ONE greenlet: each awaited call of SQLAlchemy's asyncio API is a
    greenlet switch of its own. ``appender`` appends the messages (the writer's keeps its
    connection between batches); without one, they go on a connection borrowed for them."""
    return await run_in_greenlet(_ingest_many, engine.sync_engine, envelopes, now, appender)


def _ingest_many(
    engine: SyncEngine,
    envelopes: list[Envelope],
    now: datetime,
    appender: InboxAppender | None,
) -> list[Ingested]:
    applied = [0] * len(envelopes)
    if any(e.statuses for e in envelopes):
        with engine.begin() as connection:
            applied = _apply_statuses(connection, envelopes, now)
    received: dict[str, Received] = {}
    for envelope in envelopes:
        for m in envelope.messages:
            if m.kind != "ignored" and m.id not in received:
                received[m.id] = Received(m.id, m.sender, m.to_json())
    messages = list(received.values())
    if appender is None:
        new = append(engine, CHANNEL, messages, now)
    else:
        new = appender.append(CHANNEL, messages, now)
    return _results(envelopes, new, applied)


def _results(envelopes: list[Envelope], new: set[str], applied: list[int]) -> list[Ingested]:
    """Each body's outcome: its senders with new rows, and the counts."""
    results = []
    for envelope, statuses in zip(envelopes, applied, strict=True):
        mine = [m for m in envelope.messages if m.kind != "ignored"]
        fresh = [m for m in mine if m.id in new]
        new.difference_update(m.id for m in fresh)  # a wamid twice in one batch counts once
        results.append(
            Ingested(
                senders=tuple(dict.fromkeys(m.sender for m in fresh)),
                new_messages=len(fresh),
                duplicates=len(mine) - len(fresh),
                statuses=statuses,
            )
        )
    return results


class InboxWriter:
    """Group commit for the webhook (:class:`~scheduler.group_commit.GroupCommit`): bodies that
    arrive while a transaction is being written share the next one. Each caller still gets its
    answer only after its rows are committed (stored before the 200), but a burst of
    webhooks costs a few transactions instead of one each. Messages are appended by an
    :class:`~scheduler.store.inbox.InboxAppender`, which keeps its connection while the
    batches keep coming.
    """

    def __init__(self, engine: Engine, *, max_batch: int = 256) -> None:
        self.engine = engine
        self._appender = InboxAppender(engine.sync_engine)
        self._group: GroupCommit[Envelope, Ingested] = GroupCommit(
            self._write_many, run_one=self._write_one, name="inbox-writer", max_batch=max_batch
        )

    async def write(self, envelope: Envelope) -> Ingested:
        """Store ``envelope`` (see :func:`ingest`); return once it is committed."""
        return await self._group.submit(envelope)

    async def _write_many(self, envelopes: list[Envelope]) -> list[Ingested]:
        return await ingest_many(self.engine, envelopes, utcnow(), appender=self._appender)

    async def _write_one(self, envelope: Envelope) -> Ingested:
        (result,) = await self._write_many([envelope])
        return result

    async def close(self) -> None:
        """Wait for the bodies being written; give the appender's connection back."""
        await self._group.close()
        await run_in_greenlet(self._appender.close)


def _apply_statuses(
    connection: SyncConnection, envelopes: list[Envelope], now: datetime
) -> list[int]:
    """Apply every body's statuses; per body, how many matched a send of ours.

    Lock order (``scheduler.store``): the leads whose window closed (ascending id), then the
    outbox rows (ascending id, each write fenced on the rank it holds), then the parked
    statuses of sends not recorded yet (:mod:`scheduler.store.parked_statuses`)."""
    statuses = [s for e in envelopes for s in e.statuses]
    items = outbox_store.by_external_ids(connection, CHANNEL, [s.id for s in statuses])
    closed: dict[int, datetime] = {}
    for status in statuses:
        if WINDOW_CLOSED in status.error_codes:
            lead_id = items[status.id][1] if status.id in items else None
            lead_id = lead_id or _lead_by_recipient(connection, status.recipient_id)
            if lead_id is not None:
                closed[lead_id] = max(status.timestamp, closed.get(lead_id, status.timestamp))
    for lead_id in sorted(closed):
        close_window_unless_newer(connection, lead_id, closed[lead_id])
    changes = [(items[s.id][0], _status(s)) for s in statuses if s.id in items]
    parked_statuses.set_delivery_status(connection, changes)
    unmatched = [_status(s) for s in statuses if s.id not in items]
    parked_statuses.park(connection, CHANNEL, unmatched, now)
    return [sum(1 for s in e.statuses if s.id in items) for e in envelopes]


def _status(status: StatusUpdate) -> parked_statuses.Status:
    error = None
    if status.status == "failed":
        codes = ",".join(str(c) for c in status.error_codes) or "?"
        error = f"WhatsApp status failed ({codes}): {status.error_title or ''}"[:2000]
    return parked_statuses.Status(status.id, status.status, error)


def _lead_by_recipient(connection: SyncConnection, recipient_id: str | None) -> int | None:
    if not recipient_id:
        return None
    return lead_id_by_phone(connection, f"+{recipient_id}")
