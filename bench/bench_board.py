"""The console's board and Today queries at scale: 1M leads, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_board                           # 1M leads, both backends
    .venv/bin/python -m bench.bench_board --leads 100000 --backends sqlite
    .venv/bin/python -m bench.bench_board --candidate-indexes       # with the indexes proposed
    .venv/bin/python -m bench.bench_board --explain                 # and each query's plan

Fills a fresh store with ``--leads`` leads spread over a year (every stage, 20 owners, tiers,
sources, 50 campaigns, searchable names and companies), their stage events, one outbound
message per contacted lead, touches and bookings, then times the store functions the pages
call (:mod:`scheduler.store.board`, :mod:`scheduler.store.dashboard`): the board's first
page (seven columns), a deep keyset page, the per-stage counts, filtered pages and counts,
searches, and the Today figures. Each figure is the median of ``--rounds`` runs, in ms,
after one warm-up run. PostgreSQL is analyzed after the fill (autovacuum would do it);
SQLite runs as the service runs it (no ANALYZE). ``--candidate-indexes`` adds the indexes
the lead is asked to migrate (:data:`CANDIDATE_INDEXES`) before timing, to compare.
Results: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from scheduler.store import board, dashboard
from scheduler.store.engine import create_engine, is_postgres, session_factory
from scheduler.store.migrate import upgrade
from scheduler.store.models import Booking, Lead, Message, Rep, StageEvent, Touch
from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CHUNK = 20_000
REPS = 20
CAMPAIGNS = [f"campaign-{n:02d}" for n in range(50)]
SOURCES = ["form", "csv", "api", "ctwa_ad", "whatsapp", "hubspot", "referral", "event"]
FIRST = ["Ana", "Bo", "Carla", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea"]
LAST = ["Silva", "Meyer", "Okafor", "Tanaka", "Novak", "Haddad", "Moreau", "Kowalski", "Reyes"]
# Stage shares (of 1000): most leads were contacted; a few won.
STAGES = [
    ("new", 100),
    ("contacted", 400),
    ("qualified", 150),
    ("proposal_sent", 50),
    ("won", 30),
    ("lost", 170),
    ("dormant", 100),
]
CANDIDATE_INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_leads_created_at ON leads (created_at)",
    "CREATE INDEX IF NOT EXISTS ix_leads_waiting ON leads (human_requested_at) "
    "WHERE human_requested_at IS NOT NULL AND taken_by_user_id IS NULL",
    "CREATE INDEX IF NOT EXISTS ix_stage_events_at ON stage_events (at)",
    "CREATE INDEX IF NOT EXISTS ix_bookings_created_at ON bookings (created_at)",
]
"""The indexes proposed to the lead for a migration (measured with and without)."""

Timed = Callable[[AsyncSession], Awaitable[Any]]


def _stage_of(rng: random.Random) -> str:
    pick = rng.randrange(1000)
    for stage, share in STAGES:
        if pick < share:
            return stage
        pick -= share
    raise AssertionError("the shares add up to 1000")


def _rows(first: int, last: int, total: int, rng: random.Random) -> dict[str, list[Any]]:
    """The leads ``first``..``last - 1`` (ids from 1) and the rows that hang off them."""
    spread = 365 * DAY / total
    leads: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    touches: list[dict[str, Any]] = []
    bookings: list[dict[str, Any]] = []
    for i in range(first, last):
        lead_id = i + 1
        created = NOW - (total - i) * spread
        stage = _stage_of(rng)
        tier = rng.choice(["hot", "warm", "cold", "cold"]) if rng.random() < 0.6 else None
        campaign = rng.choice(CAMPAIGNS) if rng.random() < 0.3 else None
        touched = stage != "new"
        first_out = created + timedelta(seconds=rng.expovariate(1 / 600))
        asked = created + DAY if rng.random() < 0.001 else None
        leads.append(
            {
                "token": f"t{lead_id}",
                "name": f"{rng.choice(FIRST)} {rng.choice(LAST)} {lead_id}",
                "email": f"lead{lead_id}@example{lead_id % 97}.com",
                "phone": f"+1555{lead_id:07d}" if lead_id % 2 else None,
                "company": f"Company {rng.randrange(5000)}",
                "source": rng.choice(SOURCES),
                "attribution": {"campaign": campaign} if campaign else {},
                "stage": stage,
                "version": 2 if touched else 1,
                "owner_rep_id": rng.randrange(1, REPS + 1) if rng.random() < 0.9 else None,
                "qualification": None
                if tier is None
                else {
                    "tier": tier,
                    "decision": "qualified" if tier != "cold" else "deflect",
                    "fit_score": rng.randrange(100),
                    "intent_score": rng.randrange(100),
                    "evidence": {"team_size": "we're about 40 people", "timeline": "by March"},
                    "versions": {"script": "b2b_default@3", "icp": "2026-11"},
                },
                "bot_paused": asked is not None,
                "last_outbound_at": first_out if touched else None,
                "last_inbound_at": first_out + DAY if touched and rng.random() < 0.4 else None,
                "human_requested_at": asked,
                "created_at": created,
                "updated_at": first_out if touched else created,
            }
        )
        events.append(
            {"lead_id": lead_id, "from_stage": None, "to_stage": "new", "actor": "intake"}
            | {"at": created}
        )
        if touched:
            events.append(
                {"lead_id": lead_id, "from_stage": "new", "to_stage": stage, "actor": "bench"}
                | {"at": first_out}
            )
            messages.append(
                {
                    "lead_id": lead_id,
                    "channel": "email",
                    "direction": "out",
                    "body": "Hi, thanks for reaching out",
                    "payload": {},
                    "created_at": first_out,
                }
            )
        if stage in ("contacted", "qualified") and rng.random() < 0.5:
            due = NOW + timedelta(hours=rng.uniform(-24, 24 * 14))
            awaiting = rng.random() < 0.01
            touches.append(
                {
                    "lead_id": lead_id,
                    "sequence": "new_lead",
                    "step": "day3",
                    "cycle": 0,
                    "channel": "email",
                    "due_at": due,
                    "status": "awaiting_approval" if awaiting else "pending",
                    "meta": {},
                    "created_at": created,
                }
            )
        if stage in ("proposal_sent", "won") and rng.random() < 0.5:
            bookings.append(
                {
                    "lead_id": lead_id,
                    "invitee_uri": f"https://api.calendly.com/invitees/{lead_id}",
                    "status": "active",
                    "payload": {},
                    "created_at": first_out + DAY,
                }
            )
    return {"leads": leads, "events": events, "messages": messages, "touches": touches} | {
        "bookings": bookings
    }


async def populate(engine: AsyncEngine, total: int) -> float:
    """Fill the store; the seconds it took."""
    sessions = session_factory(engine)
    rng = random.Random(14)
    started = time.perf_counter()
    async with sessions.begin() as session:
        await session.execute(
            insert(cast(Table, Rep.__table__)),
            [
                {"name": f"Rep {n}", "email": f"rep{n}@team.example", "active": True}
                | {"created_at": NOW}
                for n in range(1, REPS + 1)
            ],
        )
    tables = {
        "leads": Lead,
        "events": StageEvent,
        "messages": Message,
        "touches": Touch,
        "bookings": Booking,
    }
    for first in range(0, total, CHUNK):
        rows = _rows(first, min(first + CHUNK, total), total, rng)
        async with sessions.begin() as session:
            for name, model in tables.items():
                if rows[name]:  # Core: one executemany (the ORM's bulk path goes row by row)
                    await session.execute(insert(cast(Table, model.__table__)), rows[name])
    if is_postgres(engine):
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def queries(total: int) -> dict[str, Timed]:
    """What the pages run, by name."""
    none = board.BoardFilters()
    stages = [stage for stage, _ in STAGES]
    week_ago = NOW - 7 * DAY
    day_start = NOW.replace(hour=0)

    def whole_board(filters: board.BoardFilters) -> Timed:
        async def run(session: AsyncSession) -> Any:
            await board.stage_counts(session, filters)
            for stage in stages:
                await board.column_page(session, stage, filters)

        return run

    def first_pages(filters: board.BoardFilters) -> Timed:
        async def run(session: AsyncSession) -> Any:
            for stage in stages:
                await board.column_page(session, stage, filters)

        return run

    def counts(filters: board.BoardFilters) -> Timed:
        return lambda session: board.stage_counts(session, filters)

    mine = board.BoardFilters(owner_rep_id=7)
    hot = board.BoardFilters(tier="hot")
    campaign = board.BoardFilters(campaign="campaign-17")
    recent = board.BoardFilters(created_from=NOW - 30 * DAY)
    year_ago = board.BoardFilters(created_from=NOW - 300 * DAY, created_before=NOW - 299 * DAY)
    name = board.BoardFilters(search=f"Tanaka {total // 3}")
    company = board.BoardFilters(search="Company 4321")
    email = board.BoardFilters(search=f"lead{total // 2 + 1}@example")
    phone = board.BoardFilters(search=f"555 {total // 4 + 1:07d}")
    return {
        "board: whole page, no filter (counts + 7 columns)": whole_board(none),
        "board: first pages of the 7 columns": first_pages(none),
        "board: a deep keyset page (contacted, before id 1000)": lambda s: board.column_page(
            s, "contacted", none, before=1000
        ),
        "board: counts per stage, no filter": counts(none),
        "board: mine (owner) whole page": whole_board(mine),
        "board: tier=hot first pages": first_pages(hot),
        "board: tier=hot counts": counts(hot),
        "board: campaign (1 of 50) first pages": first_pages(campaign),
        "board: campaign (1 of 50) counts": counts(campaign),
        "board: created last 30 days whole page": whole_board(recent),
        "board: created one day 300 days ago whole page": whole_board(year_ago),
        "search: name, whole page": whole_board(name),
        "search: company, whole page": whole_board(company),
        "search: email, whole page": whole_board(email),
        "search: phone digits, whole page": whole_board(phone),
        "today: headline counts": lambda s: dashboard.today_counts(
            s, day_start=day_start, week_start=week_ago, day_end=day_start + DAY
        ),
        "today: first touch (7 days)": lambda s: dashboard.first_touches(
            s, since=week_ago, limit=100_000
        ),
        "today: stages reached (30 days)": lambda s: dashboard.stages_reached(
            s, since=NOW - 30 * DAY
        ),
        "today: bookings per campaign (30 days)": lambda s: dashboard.bookings_by_campaign(
            s, since=NOW - 30 * DAY, limit=10
        ),
    }


async def timed(sessions: async_sessionmaker[AsyncSession], run: Timed, rounds: int) -> float:
    """The median wall time of ``run`` in ms (one session a run, as a page request has)."""
    figures = []
    for attempt in range(rounds + 1):
        async with sessions() as session:
            started = time.perf_counter()
            await run(session)
            elapsed = time.perf_counter() - started
        if attempt:  # the first run warms caches and statement caches
            figures.append(elapsed * 1000)
    return statistics.median(figures)


async def explain(engine: AsyncEngine, run: Timed) -> list[str]:
    """The plans of the statements ``run`` sends (EXPLAIN QUERY PLAN / EXPLAIN)."""
    from sqlalchemy import event

    statements: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not statement.startswith("EXPLAIN"):
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        async with session_factory(engine)() as session:
            await run(session)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    prefix = "EXPLAIN " if is_postgres(engine) else "EXPLAIN QUERY PLAN "
    plans = []
    async with engine.connect() as connection:
        raw = (await connection.get_raw_connection()).driver_connection
        for statement, parameters in statements[:2]:
            if is_postgres(engine):
                rows = await raw.fetch(prefix + statement, *(parameters or ()))  # type: ignore[union-attr]
                plans.append("\n".join(r[0] for r in rows))
            else:
                found = await connection.exec_driver_sql(prefix + statement, tuple(parameters))
                plans.append("\n".join(str(r[-1]) for r in found))
    return plans


async def measure(url: str, args: argparse.Namespace) -> None:
    async with scratch_store(url, pool_size=2) as engine:
        seconds = await populate(engine, args.leads)
        print(f"  filled in {seconds:.0f} s")
        await measure_filled(engine, args)


async def measure_filled(engine: AsyncEngine, args: argparse.Namespace) -> None:
    async with engine.begin() as connection:
        for statement in CANDIDATE_INDEXES:
            if args.candidate_indexes:
                await connection.execute(text(statement))
            else:  # a reused file may have them from an earlier run
                index = statement.split(" EXISTS ")[1].split()[0]
                await connection.execute(text(f"DROP INDEX IF EXISTS {index}"))
        if is_postgres(engine):
            await connection.execute(text("ANALYZE"))
    if args.candidate_indexes:
        print("  with the candidate indexes")
    sessions = session_factory(engine)
    for name, run in queries(args.leads).items():
        print(f"  {await timed(sessions, run, args.rounds):9.1f} ms  {name}", flush=True)
        if args.explain:
            for plan in await explain(engine, run):
                print("      " + plan.replace("\n", "\n      "))


async def _on_file(args: argparse.Namespace) -> None:
    """SQLite in ``--sqlite-file``: filled (and kept) the first time, reused after."""
    path = Path(args.sqlite_file)
    fresh = not path.exists()
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        if fresh:
            await upgrade(engine)
            print(f"  filled in {await populate(engine, args.leads):.0f} s (kept in {path})")
        else:
            print(f"  reusing {path}")
        await measure_filled(engine, args)
    finally:
        await engine.dispose()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def main(args: argparse.Namespace) -> None:
    print(f"{args.leads:,} leads, median of {args.rounds} runs; load {loadavg()}")
    for backend in args.backends:
        if backend == "postgres" and not await postgres_reachable():
            print(f"postgres skipped: {POSTGRES_URL} not reachable")
            continue
        print(backend)
        if backend == "sqlite" and args.sqlite_file:
            await _on_file(args)
        elif backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                await measure(f"sqlite+aiosqlite:///{folder}/bench.db", args)
        else:
            await measure(POSTGRES_URL, args)
    print(f"load {loadavg()}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--candidate-indexes", action="store_true", help="add CANDIDATE_INDEXES")
    parser.add_argument(
        "--sqlite-file", default="", help="fill this file once and reuse it (for iterating)"
    )
    parser.add_argument("--explain", action="store_true", help="print the first plans of each")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_parse()))
