"""Store what webhook bodies carried, committed before their 200.

Messages go to the durable inbox (UNIQUE ``(channel, external_id)`` = the wamid, inserted
with ON CONFLICT DO NOTHING: Meta's retries and duplicates change nothing). Statuses update
the outbox rows they are about (matched on the wamid Meta gave us when we sent); statuses
arrive out of order, so a later one never overwrites a further one (``read`` beats
``delivered``; ``failed`` beats everything). A ``failed`` with 131047 means the 24-hour
customer-service window is closed: recorded on the lead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from bot.batching import GroupRunner
from bot.whatsapp.envelope import Envelope, StatusUpdate
from scheduler.inbox_append import InboxAppender, Received, append
from scheduler.models import Lead, OutboxItem, utcnow

CHANNEL = "whatsapp"
WINDOW_CLOSED = 131047
_OUTBOX = cast(Table, OutboxItem.__table__)
_LEADS = cast(Table, Lead.__table__)
_OUTBOX_BY_WAMID = select(_OUTBOX.c.id, _OUTBOX.c.lead_id, _OUTBOX.c.delivery_status).where(
    _OUTBOX.c.external_id == bindparam("wamid"), _OUTBOX.c.channel == bindparam("channel")
)
_SET_OUTBOX = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("b_id"))  # SET: the other keys
_RANK = {"sent": 1, "delivered": 2, "read": 3, "played": 4, "failed": 9}


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one body changed: senders with new inbox rows, and counts."""

    senders: tuple[str, ...]
    new_messages: int
    duplicates: int
    statuses: int


async def ingest(engine: AsyncEngine, envelope: Envelope, now: datetime) -> Ingested:
    """Store ``envelope``'s messages and apply its statuses (see :func:`ingest_many`)."""
    (result,) = await ingest_many(engine, [envelope], now)
    return result


async def ingest_many(
    engine: AsyncEngine,
    envelopes: list[Envelope],
    now: datetime,
    *,
    appender: InboxAppender | None = None,
) -> list[Ingested]:
    """Store several bodies at once (group commit); one result per body.

    Statuses first, in one transaction (Core statements on a connection), then the messages,
    appended on the driver connection (:mod:`scheduler.inbox_append`: this runs for every
    webhook, and SQLAlchemy's per-transaction machinery cost several times the statements).
    Both are committed before any body gets its 200. If the messages fail after the statuses
    were applied, applying those statuses again (the retry) changes nothing; the other way
    round, messages stored without a 200 would be retried as duplicates and never kicked.
    The whole thing runs in ONE greenlet: each awaited call of SQLAlchemy's asyncio API is a
    greenlet switch of its own. ``appender`` appends the messages (the writer's keeps its
    connection between batches); without one, they go on a connection borrowed for them."""
    return await greenlet_spawn(_ingest_many, engine.sync_engine, envelopes, now, appender)


def _ingest_many(
    engine: Engine, envelopes: list[Envelope], now: datetime, appender: InboxAppender | None
) -> list[Ingested]:
    applied = [0] * len(envelopes)
    if any(e.statuses for e in envelopes):
        with engine.begin() as connection:
            applied = [sum(_apply_status(connection, s) for s in e.statuses) for e in envelopes]
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
    """Group commit for the webhook (:class:`bot.batching.GroupRunner`): bodies that arrive
    while a transaction is being written share the next one. Each caller still gets its
    answer only after its rows are committed (stored before the 200), but a burst of
    webhooks costs a few transactions instead of one each. Messages are appended by an
    :class:`~scheduler.inbox_append.InboxAppender`, which keeps its connection while the
    batches keep coming.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self.engine = engine
        self._appender = InboxAppender(engine.sync_engine)
        self._group: GroupRunner[Envelope, Ingested] = GroupRunner(
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
        await greenlet_spawn(self._appender.close)


def _apply_status(connection: Connection, status: StatusUpdate) -> int:
    item = (
        connection.execute(_OUTBOX_BY_WAMID, {"wamid": status.id, "channel": CHANNEL})
    ).one_or_none()
    lead_id = item.lead_id if item is not None else None
    if item is not None and _RANK.get(status.status, 0) > _RANK.get(item.delivery_status or "", 0):
        change: dict[str, object] = {"b_id": item.id, "delivery_status": status.status[:20]}
        if status.status == "failed":
            codes = ",".join(str(c) for c in status.error_codes) or "?"
            change["error"] = f"WhatsApp status failed ({codes}): {status.error_title or ''}"[
                :2000
            ]
        connection.execute(_SET_OUTBOX, change)
    if WINDOW_CLOSED in status.error_codes:
        _window_closed(connection, lead_id, status.recipient_id, status.timestamp)
    return 1 if item is not None else 0


def _window_closed(
    connection: Connection, lead_id: int | None, recipient_id: str | None, at: datetime
) -> None:
    if lead_id is None and recipient_id:
        lead_id = connection.scalar(
            select(_LEADS.c.id).where(_LEADS.c.phone == f"+{recipient_id}")
        )
    if lead_id is None:
        return
    # Only if they have not written since: their newer message reopened the window.
    connection.execute(
        update(_LEADS)
        .where(_LEADS.c.id == lead_id)
        .where((_LEADS.c.last_inbound_at.is_(None)) | (_LEADS.c.last_inbound_at < at))
        .values(whatsapp_window_closed_at=at)
    )
