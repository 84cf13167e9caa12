"""The experiments report at scale: 1M leads with a conversation, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_experiments                          # 1M leads, both
    .venv/bin/python -m bench.bench_experiments --leads 100000 --backends sqlite
    .venv/bin/python -m bench.bench_experiments --share 1.0              # all in experiments

Fills a fresh store with ``--leads`` leads (stages as a real pipeline's), each with a dialog
session whose state is a realistic JSON document (slots, a short history), ``--share`` of
them in one of two experiments of three variants, and bookings for 5 % of the leads; then
times :func:`scheduler.store.experiments.arm_counts` (the report's one query, grouped on the
indexed ``experiment``/``variant`` columns) and, to compare, the same report grouped on the
state's JSON instead (what it would cost without the columns of migration 0015). Each figure
is the median of ``--rounds`` runs in ms, after one warm-up. PostgreSQL is vacuumed and
analyzed after the fill (autovacuum would do it). Results: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from scheduler.store.engine import is_postgres, session_factory
from scheduler.store.experiments import arm_counts
from scheduler.store.models import Booking, DialogSessionRow, Lead
from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
CHUNK = 10_000
STAGES = ["new"] * 10 + ["contacted"] * 40 + ["qualified"] * 15 + ["proposal_sent"] * 5
STAGES += ["won"] * 3 + ["lost"] * 17 + ["dormant"] * 10
EXPERIMENTS = [("b2b_default", "greeting-test-1"), ("b2b_es", "saludo-1")]
VARIANTS = ["a", "b", "c"]


def _state(rng: random.Random, experiment: str | None, variant: str | None) -> dict[str, Any]:
    turn = {"role": "prospect", "text": "we are about 40 people, need it by March", "at": NOW}
    return {
        "schema_version": 1,
        "script_id": "b2b_default",
        "script_version": "2026-12",
        "status": rng.choice(["active", "qualified", "disqualified"]),
        "slots": {
            "need": {"value": "build", "evidence": "a new integration", "unknown": False},
            "company_size": {"value": "11-50", "evidence": "40 people", "unknown": False},
        },
        "history": [turn, {**turn, "role": "bot", "text": "And when would you like to start?"}],
        "started_at": NOW,
        "updated_at": NOW,
        "turns": 3,
        "experiment": experiment,
        "variant": variant,
    }


async def fill(engine: AsyncEngine, leads: int, share: float) -> None:
    rng = random.Random(7)
    sessions = session_factory(engine)
    for start in range(0, leads, CHUNK):
        count = min(CHUNK, leads - start)
        ids = list(range(start + 1, start + count + 1))  # given: no RETURNING round trips
        lead_rows = [
            {
                "id": lead_id,
                "token": f"t{lead_id:015d}",
                "stage": rng.choice(STAGES),
                "attribution": {},
                "version": 1,
                "bot_paused": False,
                "created_at": NOW,
                "updated_at": NOW,
            }
            for lead_id in ids
        ]
        async with sessions.begin() as db:
            await db.execute(insert(_table(Lead)), lead_rows)
            session_rows, bookings = [], []
            for lead_id in ids:
                in_experiment = rng.random() < share
                script_id, experiment = rng.choice(EXPERIMENTS)
                variant = rng.choice(VARIANTS) if in_experiment else None
                state = _state(rng, experiment if in_experiment else None, variant)
                session_rows.append(
                    {
                        "lead_id": lead_id,
                        "script_id": script_id,
                        "script_version": "2026-12",
                        "state": {k: _json(v) for k, v in state.items()},
                        "updated_at": NOW,
                        "experiment": state["experiment"],
                        "variant": variant,
                    }
                )
                if rng.random() < 0.05:
                    bookings.append(
                        {
                            "lead_id": lead_id,
                            "invitee_uri": f"https://api.calendly.com/invitees/{lead_id}",
                            "status": "canceled" if rng.random() < 0.1 else "active",
                            "payload": {},
                            "created_at": NOW,
                        }
                    )
            await db.execute(insert(_table(DialogSessionRow)), session_rows)
            if bookings:
                await db.execute(insert(_table(Booking)), bookings)
    if is_postgres(engine):
        # What autovacuum does to a live table: statistics, and the visibility map that
        # lets the report read the index alone (without it: a heap fetch per row, ~3x).
        async with engine.connect() as connection:
            auto = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in ("leads", "dialog_sessions", "bookings"):
                await auto.execute(text(f"VACUUM ANALYZE {table}"))


def _table(model: Any) -> Table:
    # Core inserts: the ORM's bulk path would add a statement per row for the defaults.
    return cast(Table, model.__table__)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def _json_report(engine: AsyncEngine) -> str:
    """The same report grouped on the state's JSON (no columns): the alternative measured."""
    if is_postgres(engine):
        exp, var = "(ds.state->>'experiment')", "(ds.state->>'variant')"
    else:
        exp, var = "json_extract(ds.state, '$.experiment')", "json_extract(ds.state, '$.variant')"
    return f"""
        SELECT ds.script_id, {exp} AS e, {var} AS v, count(*),
          sum(CASE WHEN ds.lead_id IN (SELECT id FROM leads
                WHERE stage IN ('qualified', 'proposal_sent', 'won')) THEN 1 ELSE 0 END),
          sum(CASE WHEN ds.lead_id IN (SELECT lead_id FROM bookings
                WHERE status != 'canceled' AND lead_id IS NOT NULL) THEN 1 ELSE 0 END)
        FROM dialog_sessions ds
        WHERE {exp} IS NOT NULL GROUP BY ds.script_id, e, v ORDER BY 1, 2, 3"""


async def timed(
    engine: AsyncEngine, work: Callable[[AsyncSession], Awaitable[Any]], rounds: int
) -> tuple[float, Any]:
    sessions = session_factory(engine)
    async with sessions() as db:
        result = await work(db)  # warm-up
    times = []
    for _ in range(rounds):
        async with sessions() as db:
            started = time.perf_counter()
            result = await work(db)
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def run(url: str, leads: int, share: float, rounds: int) -> None:
    async with scratch_store(url, prefix="bench_exp") as engine:
        started = time.perf_counter()
        await fill(engine, leads, share)
        backend = "postgres" if is_postgres(engine) else "sqlite"
        print(f"{backend}: filled {leads:,} leads in {time.perf_counter() - started:.0f} s")
        ms, arms = await timed(engine, arm_counts, rounds)
        assigned = sum(a.assigned for a in arms)
        print(
            f"  arm_counts (indexed columns): {ms:8.1f} ms "
            f"({len(arms)} arms, {assigned:,} assigned)"
        )
        ms, _ = await timed(engine, lambda db: arm_counts(db, "b2b_default"), rounds)
        print(f"  arm_counts --script b2b_default: {ms:5.1f} ms")
        query = text(_json_report(engine))

        async def by_json(db: AsyncSession) -> list[Any]:
            return list(await db.execute(query))

        ms, rows = await timed(engine, by_json, rounds)
        assert sum(r[3] for r in rows) == assigned
        print(f"  same report on the state's JSON: {ms:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--share", type=float, default=0.3, help="share of leads in an experiment")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="sqlite,postgres")
    args = parser.parse_args()

    async def go() -> None:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                with tempfile.TemporaryDirectory() as tmp:
                    url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
                    await run(url, args.leads, args.share, args.rounds)
            elif await postgres_reachable():
                await run(POSTGRES_URL, args.leads, args.share, args.rounds)
            else:
                print("postgres: not reachable, skipped")

    asyncio.run(go())


if __name__ == "__main__":
    main()
