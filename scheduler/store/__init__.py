"""The stage store: the only code that talks to the database.

Only modules of this package import SQLAlchemy, the drivers (aiosqlite, asyncpg) or Alembic
(``tests/test_layering.py`` fails otherwise). Everything else calls the plain async
functions here, handing them a :data:`Session` (one transaction, opened with
``sessions.begin()`` and otherwise opaque) or the :data:`Sessions` factory, and gets back
rows, ids, counts or the mapped records of :mod:`scheduler.store.models`. A caller may read
and set the attributes of a record loaded in its own session (the session writes them at
commit), but statements (select, insert, update, delete, locks) are written here.

- :mod:`~scheduler.store.engine`: engines (SQLite inline and WAL, PostgreSQL) and sessions,
  ``insert_or_ignore``, ``run_retrying``; :mod:`~scheduler.store.sqlite_inline` and
  :mod:`~scheduler.store.sqlite_files` are SQLite's details, :mod:`~scheduler.store.urls`
  reads database URLs without connecting. :mod:`~scheduler.store.sqlite_inline` and
  :mod:`~scheduler.store.inbox_driver` are the store's two fast paths, each the only code
  reaching under its library's public API, each with a plain fallback (``bench/README.md``).
- :mod:`~scheduler.store.models`: the tables; :mod:`~scheduler.store.migrate` and
  ``migrations/``: their Alembic history (``leadbot db upgrade``).
- One module of functions per table group: ``leads`` and ``contact_points`` (with the
  identity audit and conflicts), ``inbox``, ``outbox`` (and ``parked_statuses``, the
  delivery statuses waiting for their send), ``touches``, ``conversations`` (dialog
  sessions and messages), ``reps``, ``users`` (console users and their sessions),
  ``suppressions``, ``events`` (stage events, processed webhook events, bookings),
  ``notes`` (lead notes), ``lead_controls`` (owner and bot-paused, set by a person),
  ``takeover`` (who has a conversation: the queue, take, hand back), ``script_versions``
  (scripts published from the console).
- Reads across tables for one lead: ``timeline`` (everything that happened to it, paged)
  and ``conversation_feed`` (its messages with their delivery status, for the live stream).
- Reads for the console's pages: ``board`` (stage columns, counts, filters, keyset pages),
  ``dashboard`` (the Today figures), ``approval_queue`` (drafts waiting for a person),
  ``campaigns`` (campaigns seen on leads).
- Outbound events (rows of the outbox's ``events`` channel): ``event_deliveries`` (the lead
  facts an event carries, the deliveries that ended failed).
- The HubSpot sync: ``hubspot_sync`` (a lead's state as the sync pushes it, the contact and
  deal ids it is mirrored to, the notes pushed by key).
- Work across every table: ``erasure`` (forget a person, in lock order) and ``retention``
  (trim dedupe records no vendor can re-deliver any more).

The outbox's delivery statements (claim, start, record, reap) are still written in
:mod:`scheduler.delivery.outbox` (``tests/test_layering.py`` lists it as not yet moved).

THE ONE LOCK ORDER. Every transaction that locks (writes, or ``SELECT … FOR UPDATE``) rows
of several tables takes them in this order, so that two transactions can never wait for each
other in a cycle (a deadlock, on Postgres; SQLite locks the whole database and cannot):

1. ``leads`` rows first, in ascending id (``SELECT … FOR UPDATE`` them, or run the UPDATE
   that changes them, before any dependent row; several leads: sorted by id);
2. then ``touches`` rows, ascending id;
3. then ``outbox`` rows, ascending id (then the delivery statuses parked for them);
4. then the rest (inbox, messages, dialog sessions, bookings, suppressions, stage events,
   contact points), each table in ascending id.

One exception, safe because of rule 1: a conversation's turn claims its own inbox rows (marks
them processed) right after locking its lead and before it cancels touches or enqueues
replies; the only other writer of those rows after touches or outbox rows is an erasure,
which locks the same lead first, so the two take turns on the lead.

Inserting a new row does not count as taking an existing row's lock (a foreign key only
takes a share lock on its parent, which an update of non-key columns does not block).
Claim statements that use ``FOR UPDATE SKIP LOCKED`` are exempt: they never wait. A
transaction that must run where an outside party does not follow the order (or simply
under contention) can be retried with :func:`~scheduler.store.engine.run_retrying` when it
is idempotent.

FENCING: WRITE ON WHAT YOU READ. A write decided on something read earlier is a conditional
UPDATE on exactly what was read, and its row count says whether it applied:

- a stage move is fenced on the stage and ``version`` read (``leads.version`` is bumped on
  every move, and by an erasure); a decision about a lead made inside a transaction reads
  it first under its row lock (:func:`scheduler.store.leads.lock_lead`);
- a claimed touch or outbox row is written only while it still carries the ``claim_token``
  (and state) of the claim that read it: a row reaped and claimed elsewhere meanwhile is
  left to its new owner;
- inbox rows are marked processed only where ``processed_at`` is still empty, and a turn
  whose rows were taken meanwhile commits nothing;
- a delivery status is written only over a lower-ranked one (statuses arrive out of order);
- intents and receipts are keyed (outbox key, wamid, webhook event id) and inserted with
  ``ON CONFLICT DO NOTHING``: doing them twice stores them once.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection as _Connection
from sqlalchemy.engine import Engine as _SyncEngine
from sqlalchemy.exc import DataError as _DataError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

Engine = AsyncEngine
"""An engine: what :func:`~scheduler.store.engine.create_engine` returns."""
Session = AsyncSession
"""One transaction (or a read-only unit of work): pass it on, never look inside."""
Sessions = async_sessionmaker[AsyncSession]
"""The factory of :data:`Session`\\ s: ``async with sessions.begin() as session: …``."""
SyncEngine = _SyncEngine
"""An engine's synchronous face, for code that runs in one SQLAlchemy greenlet."""
SyncConnection = _Connection
"""A synchronous connection (inside :func:`~scheduler.store.engine.run_sync`)."""

DataError = _DataError
"""The database refused a value (too long for its column, out of range): bad input."""

__all__ = ["DataError", "Engine", "Session", "Sessions", "SyncConnection", "SyncEngine"]
