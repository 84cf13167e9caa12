"""The console's board and Today queries at scale: 1M leads, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_board                           # 1M leads, both backends
    .venv/bin/python -m bench.bench_board --leads 100000 --backends sqlite
    .venv/bin/python -m bench.bench_board --candidate-indexes       # with the indexes proposed
    .venv/bin/python -m bench.bench_board --explain                 # and each query's plan
    .venv/bin/python -m bench.bench_board --keep /tmp/board1m       # fill once, reuse after

Fills a fresh store with ``--leads`` leads spread over a year (every stage, 20 owners, tiers,
sources, 50 campaigns, searchable names and companies), their stage events, one outbound
message per contacted lead, touches and bookings, then times the store functions the pages
call (:mod:`scheduler.store.board`, :mod:`scheduler.store.dashboard`): the board's first
page (seven columns), a deep keyset page, the per-stage counts, filtered pages and counts,
searches, and the Today figures. Each figure is the median of ``--rounds`` runs, in ms,
after one warm-up run. PostgreSQL is analyzed after the fill (autovacuum would do it);
SQLite runs as the service runs it (no ANALYZE). ``--candidate-indexes`` adds the indexes
proposed for a migration (:data:`CANDIDATE_INDEXES`; on PostgreSQL also the ``pg_trgm``
ones of :data:`TRIGRAM_INDEXES`) before timing, to compare.
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
CANDIDATE_INDEXES = {
    # Today: new leads, the first-touch window, the conversion cohort; the board's dates.
    "ix_leads_created_at": "ON leads (created_at)",
    # Today: bookings made today and this week.
    "ix_bookings_created_at": "ON bookings (created_at)",
}
"""The indexes proposed to the lead for a migration (measured with and without)."""
TRIGRAM_INDEXES = {
    f"ix_leads_{column}_trgm": f"ON leads USING gin ({column} {{ops}})"
    for column in ("name", "email", "company", "phone")
}
"""PostgreSQL only (``pg_trgm``): the board's search (ILIKE and LIKE '%…%') by index."""

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


async def candidate_indexes(engine: AsyncEngine, *, add: bool) -> None:
    """Add the candidate indexes (and on PostgreSQL the trigram ones), or drop them (a kept
    store may have them from an earlier run)."""
    indexes = dict(CANDIDATE_INDEXES)
    async with engine.begin() as connection:
        if is_postgres(engine):
            ops = "gin_trgm_ops"
            if add:
                await connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
                found = await connection.execute(
                    text(
                        "SELECT extnamespace::regnamespace::text FROM pg_extension "
                        "WHERE extname = 'pg_trgm'"
                    )
                )
                ops = f"{found.scalar_one()}.gin_trgm_ops"  # wherever it was installed
            indexes |= {name: how.format(ops=ops) for name, how in TRIGRAM_INDEXES.items()}
        for name, how in indexes.items():
            if add:
                await connection.execute(text(f"CREATE INDEX IF NOT EXISTS {name} {how}"))
            else:
                await connection.execute(text(f"DROP INDEX IF EXISTS {name}"))
        if is_postgres(engine):
            await connection.execute(text("ANALYZE"))


def queries(total: int) -> dict[str, Timed]:
    """What the pages run, by name."""
    none = board.BoardFilters()
    stages = [stage for stage, _ in STAGES]
    week_ago = NOW - 7 * DAY
    day_start = NOW.replace(hour=0)

    def whole(filters: board.BoardFilters) -> Timed:
        """The board page: every count, every column's first page."""
        return lambda session: board.board_view(session, filters, stages=stages)

    def more(stage: str, filters: board.BoardFilters, before: int) -> Timed:
        """A column's "more" fragment."""
        return lambda session: board.column_page(session, stage, filters, before=before)

    company = board.BoardFilters(search="Company 4321")
    return {
        "board: no filter (counts + 7 columns)": whole(none),
        "board: counts alone, no filter": lambda session: board.stage_counts(session, none),
        "board: more, contacted, before id 1000": more("contacted", none, 1000),
        "board: more, contacted, before the middle id": more("contacted", none, total // 2),
        "board: mine (one owner of 20)": whole(board.BoardFilters(owner_rep_id=7)),
        "board: tier=hot (15%: per column)": whole(board.BoardFilters(tier="hot")),
        "board: campaign (1 of 50: one pass)": whole(board.BoardFilters(campaign="campaign-17")),
        "board: created in the last 30 days": whole(
            board.BoardFilters(created_from=NOW - 30 * DAY)
        ),
        "board: created on one day 300 days ago": whole(
            board.BoardFilters(created_from=NOW - 300 * DAY, created_before=NOW - 299 * DAY)
        ),
        "board: mine + tier=hot": whole(board.BoardFilters(owner_rep_id=7, tier="hot")),
        "search: a name (1 match)": whole(board.BoardFilters(search=f"Tanaka {total // 3}")),
        "search: a company (0.02%)": whole(company),
        "search: an email (1 match)": whole(
            board.BoardFilters(search=f"lead{total // 2 + 1}@example")
        ),
        "search: phone digits (1 match)": whole(
            board.BoardFilters(search=f"555 {total // 4 + 1:07d}")
        ),
        "search: a common word (every lead)": whole(board.BoardFilters(search="company")),
        "search: more of a company, contacted": more("contacted", company, total // 2),
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
        distinct = {statement: parameters for statement, parameters in statements}
        for statement, parameters in list(distinct.items())[:3]:
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
    await candidate_indexes(engine, add=args.candidate_indexes)
    if args.candidate_indexes:
        print("  with the candidate indexes")
    sessions = session_factory(engine)
    for name, run in queries(args.leads).items():
        if args.only not in name:
            continue
        print(f"  {await timed(sessions, run, args.rounds):9.1f} ms  {name}", flush=True)
        if args.explain:
            for plan in await explain(engine, run):
                print("      " + plan.replace("\n", "\n      "))


async def _kept(args: argparse.Namespace, backend: str) -> None:
    """A store kept between runs (``--keep``: an SQLite file, or a Postgres schema): filled
    the first time, reused after. Drop a kept schema with ``DROP SCHEMA … CASCADE``."""
    if backend == "sqlite":
        path = Path(args.keep).with_suffix(".db")
        fresh = not path.exists()
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        where = str(path)
    else:
        schema = Path(args.keep).stem.replace("-", "_")
        engine = create_engine(POSTGRES_URL, server_settings={"search_path": schema})
        async with engine.begin() as connection:
            found = await connection.execute(
                text("SELECT 1 FROM pg_tables WHERE schemaname = :s AND tablename = 'leads'"),
                {"s": schema},
            )
            fresh = found.first() is None
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        where = f"schema {schema}"
    try:
        if fresh:
            await upgrade(engine)
            print(f"  filled in {await populate(engine, args.leads):.0f} s (kept in {where})")
        else:
            print(f"  reusing {where}")
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
        if args.keep:
            await _kept(args, backend)
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
        "--keep",
        default="",
        metavar="NAME",
        help="fill once and reuse: SQLite in NAME.db, Postgres in schema NAME (for iterating)",
    )
    parser.add_argument("--explain", action="store_true", help="print the first plans of each")
    parser.add_argument("--only", default="", help="only the queries whose name contains this")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_parse()))
