"""Dormant reactivation at scale: 10,000 dormant leads across 50 reps, on SQLite and Postgres.

    .venv/bin/python -m bench.bench_digest                        # 10k dormant, 50 reps
    .venv/bin/python -m bench.bench_digest --dormant 2000 --reps 10 --backends sqlite
    .venv/bin/python -m bench.bench_digest --noise 200000         # among other leads

Fills a fresh store with ``--noise`` other leads (contacted, with sent touches) and
``--dormant`` leads dormant for 70–120 days, spread over ``--reps`` reps in a dozen time
zones, each with the dialog session it went quiet in and its stage events. Then times:

- **start**: the reactivation job (:func:`scheduler.followups.lifecycle.start_reactivations`,
  500 leads a run as the service runs it, no per-rep cap) until it starts nothing more;
- **digest**: one run of the digest job's body (:func:`bot.http.digest.send_due_digests`) with
  every rep due: each rep's drafts read, reasons and signed links made, one email rendered
  and enqueued per rep; with the default listing cap (``LEADBOT_DIGEST_MAX_ITEMS=50``) and
  with every draft listed (200 a rep);
- the wall time, this process's CPU time (less sensitive to a loaded machine), the Python
  heap's peak during a digest run (``tracemalloc``) and the process's peak RSS.

Drafting itself (the sweeper: claim, template or LLM, filter) is ``bench_sweep``'s; here the
touches are set to ``awaiting_approval`` with a draft in one statement. Results:
``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.http.digest import send_due_digests
from bot.settings import Settings
from scheduler.followups.cadence import load_cadence
from scheduler.followups.lifecycle import start_reactivations
from scheduler.store.engine import is_postgres, session_factory
from scheduler.store.models import DialogSessionRow, Lead, OutboxItem, Rep, StageEvent, Touch
from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store

CADENCE = (
    Path(__file__).resolve().parent.parent
    / "scheduler"
    / "followups"
    / "cadences"
    / "default.yaml"
)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CHUNK = 5_000
ZONES = [
    "America/Los_Angeles", "America/Denver", "America/Chicago", "America/New_York",
    "America/Sao_Paulo", "Europe/London", "Europe/Berlin", "Europe/Helsinki", "Asia/Dubai",
    "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney",
]  # fmt: skip
SLOTS = ["budget", "team_size", "timeline", "use_case", None]


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


async def populate(engine: AsyncEngine, reps: int, dormant: int, noise: int) -> float:
    """Fill the store; the seconds it took."""
    sessions = session_factory(engine)
    rng = random.Random(15)
    started = time.perf_counter()
    async with sessions.begin() as session:
        await session.execute(
            insert(_table(Rep)),
            [
                {"name": f"Rep {n}", "email": f"rep{n}@team.example", "active": True}
                | {"timezone": ZONES[n % len(ZONES)], "created_at": NOW - 400 * DAY}
                for n in range(1, reps + 1)
            ],
        )
    total = dormant + noise
    for first in range(1, total + 1, CHUNK):
        leads, events, dialogs, touches = [], [], [], []
        for lead_id in range(first, min(first + CHUNK, total + 1)):
            is_dormant = lead_id <= dormant
            went = NOW - rng.randrange(70, 120) * DAY
            leads.append(
                {
                    "id": lead_id,
                    "token": f"t{lead_id}",
                    "name": f"Lead {lead_id}",
                    "email": f"lead{lead_id}@example{lead_id % 97}.com",
                    "company": f"Company {rng.randrange(5000)}",
                    "stage": "dormant" if is_dormant else "contacted",
                    "owner_rep_id": (lead_id % reps) + 1,
                    "last_inbound_at": went - 14 * DAY,
                    "created_at": went - 30 * DAY,
                    "updated_at": went,
                }
            )
            events.append(
                {"lead_id": lead_id, "from_stage": "new", "to_stage": "contacted"}
                | {"actor": "scheduler", "at": went - 30 * DAY, "reason": "first touch sent"}
            )
            if is_dormant:
                events.append(
                    {"lead_id": lead_id, "from_stage": "contacted", "to_stage": "dormant"}
                    | {"actor": "scheduler", "at": went, "reason": "no reply 14 days"}
                )
                slot = SLOTS[lead_id % len(SLOTS)]
                dialogs.append(
                    {"lead_id": lead_id, "script_id": "b2b_default", "script_version": "3"}
                    | {"state": {"open_slot": slot, "slots": {}}, "updated_at": went}
                )
            for step in ("first_reply", "day3", "day7", "day14"):
                touches.append(
                    {"lead_id": lead_id, "sequence": "new_lead", "step": step, "cycle": 0}
                    | {"channel": "email", "due_at": went - 14 * DAY, "status": "sent"}
                    | {"sent_at": went - 14 * DAY, "meta": {}, "created_at": went - 30 * DAY}
                )
        async with sessions.begin() as session:
            for model, rows in (
                (Lead, leads),
                (StageEvent, events),
                (DialogSessionRow, dialogs),
                (Touch, touches),
            ):
                if rows:
                    await session.execute(insert(_table(model)), rows)
    if is_postgres(engine):
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("VACUUM ANALYZE"))
    return time.perf_counter() - started


def settings(max_items: int) -> Settings:
    return Settings(
        _env_file=None,
        secret_key="b" * 32,
        public_url="https://bot.example.com",
        digest_hour=0,  # every rep due at NOW, whatever their zone
        digest_max_items=max_items,
    )


async def measure(url: str, args: argparse.Namespace) -> None:
    cadence = load_cadence(CADENCE)
    async with scratch_store(url, pool_size=2) as engine:
        filled = await populate(engine, args.reps, args.dormant, args.noise)
        print(f"  filled in {filled:.0f} s")
        sessions = session_factory(engine)
        started, runs, t0 = 0, 0, time.perf_counter()
        while True:
            runs += 1
            n = await start_reactivations(sessions, cadence, now=NOW)
            started += n
            if n == 0:
                break
        start_s = time.perf_counter() - t0
        print(
            f"  start: {started:,} reactivations in {start_s:.2f} s ({runs} runs of 500), "
            f"{started / start_s:,.0f}/s"
        )
        async with sessions.begin() as session:
            await session.execute(
                update(Touch)
                .where(Touch.sequence == "reactivation", Touch.step == "reactivate")
                .values(
                    status="awaiting_approval",
                    draft="Hi there,\n\nWe spoke a while ago. Worth a quick catch-up?\n\nSam",
                    meta={"channel": "email", "subject": "Still on your list?"},
                )
            )
        for max_items in (50, max(args.dormant // args.reps, 1)):
            times, cpus, peaks = [], [], []
            for _ in range(args.rounds):
                async with sessions.begin() as session:  # each round makes the day's emails
                    await session.execute(delete(OutboxItem))
                tracemalloc.start()
                t0, c0 = time.perf_counter(), time.process_time()
                ids = await send_due_digests(sessions, settings(max_items), cadence, now=NOW)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
                peaks.append(tracemalloc.get_traced_memory()[1])
                tracemalloc.stop()
                assert len(ids) == args.reps, (len(ids), args.reps)
            async with sessions() as session:
                size = await session.scalar(
                    select(func.max(func.length(OutboxItem.payload["text"].as_string())))
                )
            times.sort()
            cpus.sort()
            print(
                f"  digest, up to {max_items} a rep: {args.reps} emails in "
                f"{times[len(times) // 2] * 1000:,.0f} ms (median of {args.rounds}; "
                f"min {times[0] * 1000:,.0f}; this process's CPU "
                f"{cpus[len(cpus) // 2] * 1000:,.0f} ms), heap peak "
                f"{max(peaks) / 2**20:.1f} MiB (tracemalloc, traced only), "
                f"largest text {size or 0:,} chars"
            )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  process peak RSS so far: {rss:.0f} MiB")


async def main(args: argparse.Namespace) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.dormant:,} dormant leads, {args.reps} reps, {args.noise:,} others; load {load}")
    for backend in args.backends:
        if backend == "postgres" and not await postgres_reachable():
            print(f"postgres skipped: {POSTGRES_URL} not reachable")
            continue
        print(backend)
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                await measure(f"sqlite+aiosqlite:///{folder}/bench.db", args)
        else:
            await measure(POSTGRES_URL, args)
    print("load " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--dormant", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--noise", type=int, default=0, help="other (contacted) leads")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_parse()))
