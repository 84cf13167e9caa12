"""Retention: trim what is kept only to recognise a vendor's re-delivery, once no vendor can
re-deliver it any more.

Four things grow with every message and are read again only to dedupe, or never:

- processed WhatsApp inbox rows (their payload is in ``messages`` once handled; the row's
  ``(channel, external_id)`` is what makes Meta's retries of a wamid change nothing):
  deleted once received more than the retention ago. Unprocessed rows are never touched.
- ``processed_events`` (Calendly and email event ids): deleted once older than the retention.
- the payload of finished outbox rows (``sent``, ``failed``): replaced by ``{}``. The row
  itself stays: its key keeps each intent at most once whatever its age, and its wamid lets
  late delivery statuses match. ``pending``, ``sending`` and ``uncertain`` rows (a human may
  still look at those) keep theirs.
- cancelled touches that never reached the outbox (``outbox_id`` empty): a WhatsApp
  prospect's quiet cadence is scheduled with each reply of ours and cancelled by their next
  message, five rows a turn that nobody ever saw. Deleted once created more than the
  retention ago; the lead's recent history keeps them. (A sequence's next cycle number is
  read from its remaining touches: a cycle whose every touch is gone never had an outbox
  row, so its number may be used again without meeting an old outbox key.)

A dedupe record must outlive every retry of what it records, so the retention may not be
shorter than the longest vendor retry window (:data:`VENDOR_RETRY_WINDOWS`) plus a margin:
:class:`RetentionPolicy` refuses anything shorter.

Work is done in batches of ``batch`` rows (1,000 by default), each its own short transaction
found by walking the primary key upwards, so memory stays flat and a large backlog never
holds a table. Rows are taken with ``FOR UPDATE SKIP LOCKED`` on Postgres: a row some other
transaction holds (an erasure, a turn) is left for the next run, never waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, Text, cast, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.store.models import InboxItem, OutboxItem, OutboxState, ProcessedEvent, Touch
from scheduler.store.touches import TouchStatus

log = logging.getLogger("leadbot.retention")

VENDOR_RETRY_WINDOWS: dict[str, timedelta] = {
    "whatsapp (Meta)": timedelta(days=7),
    "calendly": timedelta(hours=24),
    "mailgun": timedelta(hours=8),
}
"""How long each vendor may re-deliver a webhook after the first attempt."""

# A day beyond the longest window: re-deliveries are late, clocks are not exact.
RETENTION_MARGIN = timedelta(days=1)
MIN_RETENTION_DAYS = (max(VENDOR_RETRY_WINDOWS.values()) + RETENTION_MARGIN).days
"""The shortest retention allowed (8 days): Meta's 7-day retries plus a day."""

DEFAULT_BATCH = 1000
FINISHED_OUTBOX = (OutboxState.SENT.value, OutboxState.FAILED.value)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long dedupe records are kept, and how many rows a statement trims."""

    days: int = 90
    batch: int = DEFAULT_BATCH

    def __post_init__(self) -> None:
        if self.days < MIN_RETENTION_DAYS:
            windows = ", ".join(f"{k} {v}" for k, v in VENDOR_RETRY_WINDOWS.items())
            raise ValueError(
                f"retention of {self.days} days is shorter than the {MIN_RETENTION_DAYS} days "
                f"dedupe needs (vendor retry windows: {windows}; plus a day)"
            )
        if self.batch < 1:
            raise ValueError("batch must be at least 1")

    def cutoff(self, now: datetime) -> datetime:
        """Records older than this are trimmed."""
        return now - timedelta(days=self.days)


@dataclass(slots=True)
class TrimReport:
    """What one run trimmed."""

    inbox_deleted: int = 0
    events_deleted: int = 0
    outbox_payloads_cleared: int = 0
    touches_deleted: int = 0


async def trim(
    sessions: async_sessionmaker[AsyncSession], policy: RetentionPolicy, now: datetime
) -> TrimReport:
    """Trim every dedupe record older than ``policy`` at ``now`` (see the module docstring)."""
    cutoff = policy.cutoff(now)
    inbox = _table(InboxItem)
    events = _table(ProcessedEvent)
    outbox = _table(OutboxItem)
    report = TrimReport()
    report.inbox_deleted = await _walk(
        sessions,
        inbox,
        age=inbox.c.received_at,
        cutoff=cutoff,
        doomed=inbox.c.processed_at.is_not(None),
        act=lambda ids: delete(inbox).where(inbox.c.id.in_(ids)),
        batch=policy.batch,
    )
    report.events_deleted = await _walk(
        sessions,
        events,
        age=events.c.created_at,
        cutoff=cutoff,
        doomed=None,
        act=lambda ids: delete(events).where(events.c.id.in_(ids)),
        batch=policy.batch,
    )
    # Outbox rows are walked by creation time; a row finished after the cutoff is left for a
    # later run. ``updated_at`` is left as it is: the email caps count recent rows by it.
    report.outbox_payloads_cleared = await _walk(
        sessions,
        outbox,
        age=outbox.c.created_at,
        cutoff=cutoff,
        doomed=(
            outbox.c.state.in_(FINISHED_OUTBOX)
            & (outbox.c.updated_at < cutoff)
            & (cast(outbox.c.payload, Text) != "{}")
        ),
        act=lambda ids: (
            update(outbox)
            .where(outbox.c.id.in_(ids))
            .values(payload={}, updated_at=outbox.c.updated_at)
        ),
        batch=policy.batch,
    )
    touches = _table(Touch)
    report.touches_deleted = await _walk(
        sessions,
        touches,
        age=touches.c.created_at,
        cutoff=cutoff,
        doomed=(touches.c.status == TouchStatus.CANCELLED.value) & touches.c.outbox_id.is_(None),
        act=lambda ids: delete(touches).where(touches.c.id.in_(ids)),
        batch=policy.batch,
    )
    trimmed = (report.inbox_deleted, report.events_deleted, report.outbox_payloads_cleared)
    if any(trimmed) or report.touches_deleted:
        log.info(
            "retention: deleted %d inbox row(s), %d processed event(s) and %d cancelled "
            "touch(es), cleared %d outbox payload(s) older than %s",
            report.inbox_deleted,
            report.events_deleted,
            report.touches_deleted,
            report.outbox_payloads_cleared,
            cutoff.isoformat(),
        )
    return report


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


async def _walk(
    sessions: async_sessionmaker[AsyncSession],
    table: Table,
    *,
    age: ColumnElement[datetime],
    cutoff: datetime,
    doomed: ColumnElement[bool] | None,
    act: Callable[[Select[tuple[int]]], Any],
    batch: int,
) -> int:
    """Walk ``table`` by id from the oldest row; apply ``act`` to up to ``batch`` rows older
    than ``cutoff`` that ``doomed`` selects (and no other transaction holds) at a time, each
    batch in a transaction of its own. Returns how many rows ``act`` changed.

    Ids grow with time, so the walk ends at the first row that is not old: a run reads the
    rows it trims and one more (the database skips the old rows it keeps without sending
    them), never the young part of the table."""
    done = 0
    after = 0
    old = age < cutoff
    wanted = old if doomed is None else old & doomed
    while True:
        async with sessions.begin() as session:
            rows = (
                await session.execute(
                    select(table.c.id, age)
                    .where(table.c.id > after, wanted | ~old)
                    .order_by(table.c.id)
                    .limit(batch)
                )
            ).all()
            ids = [row[0] for row in rows if row[1] < cutoff]
            if ids:
                # The rows of this id range are re-checked and locked in the statement that
                # changes them: a row that changed since (processed, finished) or that another
                # transaction holds is left alone.
                chosen = (
                    select(table.c.id)
                    .where(table.c.id > after, table.c.id <= ids[-1], wanted)
                    .with_for_update(skip_locked=True)
                )
                result = await session.execute(act(chosen))
                done += int(getattr(result, "rowcount", 0) or 0)
        if len(ids) < len(rows) or len(rows) < batch:
            return done  # reached a young row, or the end of the table
        after = rows[-1][0]
