"""Touch sweeping at scale: 1M leads, 10k due touches, sent through a local SMTP sink.

    .venv/bin/python -m bench.bench_sweep                       # SQLite, 1M leads, 10k due
    .venv/bin/python -m bench.bench_sweep --leads 100000 --due 2000

Prints: the bulk-insert time; one claim statement's time at full size (LIMIT = batch); the
sweep-and-send rate (claim → re-check → template draft → outbox → SMTP, the SMTP sink in a
process of its own, as a real server would be); the sweeping
process's peak RSS (it runs in a subprocess of its own); and, for comparison, the same
touches as one APScheduler date job each (MemoryJobStore): add time, run time, RSS.

The email channel is the product's (``bot.channels.email.EmailChannel``: suppression, daily
cap and per-domain throttle checks per batch, composition with unsubscribe headers, pooled SMTP
connections), with the cap and throttle set high enough not to hold the bench's mail back.
The APScheduler comparison sends through the same SMTP pool (no database behind its jobs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.email import EmailChannel
from bot.channels.email_message import EmailSender, compose
from bot.channels.smtp import SmtpConfig, SmtpPool
from bot.http.signing import Signer
from scheduler.delivery.outbox import Dispatcher
from scheduler.followups.cadence import load_cadence
from scheduler.followups.drafting import TemplateDrafter
from scheduler.followups.sweeper import SweepConfig, Sweeper
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.migrate import upgrade
from scheduler.store.models import Lead, OutboxItem, Touch
from scheduler.store.touches import claim_due

CADENCE = (
    Path(__file__).resolve().parent.parent
    / "scheduler"
    / "followups"
    / "cadences"
    / "default.yaml"
)
NOW = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)
# Emails in flight per delivered batch (and drafts at a time).
CONCURRENCY = 8


class Sink:
    """aiosmtpd handler that only counts messages."""

    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


def serve_sink() -> None:
    """The sink as a process of its own (an MTA is never inside the sender): prints its
    port, counts messages until stdin closes, then prints the count."""
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    print(controller.port, flush=True)  # noqa: T201
    sys.stdin.read()
    controller.stop()
    print(sink.count, flush=True)  # noqa: T201


class SinkProcess:
    """Starts :func:`serve_sink` in a subprocess; ``stop`` returns how many it accepted."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_sweep", "--phase", "sink"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> int:
        out, _ = self.process.communicate("", timeout=60)
        return int(out.strip())


CONNECTIONS = 8  # SMTP connections in the pool (the default is 4; a sink answers at once)


def email_channel(port: int, sessions: async_sessionmaker[AsyncSession]) -> EmailChannel:
    """The real email channel against the sink, with caps that never hold mail back."""
    return EmailChannel(
        SmtpConfig.from_url(f"smtp://127.0.0.1:{port}"),
        sessions,
        sender=EmailSender.parse("Sam <sam@acme.example>"),
        signer=Signer("k" * 32),
        public_url="https://bot.acme.example",
        daily_cap=10**9,
        domain_per_minute=10**9,
        connections=CONNECTIONS,
        keepalive=10.0,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def populate(url: str, leads: int, due: int) -> dict[str, float]:
    engine = create_engine(url)
    await upgrade(engine)
    sessions = session_factory(engine)
    started = time.perf_counter()
    chunk = 50_000
    for first in range(0, leads, chunk):
        n = range(first, min(first + chunk, leads))
        async with sessions.begin() as session:
            await session.execute(
                insert(Lead),
                [
                    {
                        "token": f"t{i}",
                        "name": f"Lead {i}",
                        "email": f"lead{i}@example.com",
                        "company": "Northwind",
                        "stage": "contacted",
                        "attribution": {},
                        "created_at": NOW,
                        "updated_at": NOW,
                        "timezone": "UTC",
                    }
                    for i in n
                ],
            )
            # One touch per lead: ``due`` of them due now, the rest next week.
            await session.execute(
                insert(Touch),
                [
                    {
                        "lead_id": i + 1,
                        "sequence": "new_lead",
                        "step": "day3",
                        "cycle": 0,
                        "channel": "email",
                        "status": "pending",
                        "meta": {},
                        "created_at": NOW,
                        "due_at": NOW - timedelta(seconds=i % 600)
                        if i < due
                        else NOW + timedelta(days=7),
                    }
                    for i in n
                ],
            )
    inserted = time.perf_counter() - started
    timings = []
    for _ in range(5):  # one claim statement at full size, then give the rows back
        t0 = time.perf_counter()
        claims = await claim_due(sessions, now=NOW, limit=500)
        timings.append(time.perf_counter() - t0)
        async with sessions.begin() as session:
            await session.execute(
                update(Touch)
                .where(Touch.id.in_([c.id for c in claims]))
                .values(status="pending", attempts=0, claim_token=None)
            )
    await engine.dispose()
    return {
        "insert_s": inserted,
        "rows_per_s": 2 * leads / inserted,
        "claim_ms_median": sorted(timings)[2] * 1000,
    }


async def sweep(url: str, due: int) -> dict[str, float]:
    sink = SinkProcess()
    engine = create_engine(url)
    sessions = session_factory(engine)
    channel = email_channel(sink.port, sessions)
    try:
        cadence = load_cadence(CADENCE)
        sweeper = Sweeper(
            sessions,
            cadence,
            TemplateDrafter(cadence),
            Dispatcher(sessions, {"email": channel}),
            links={"calendly": "https://calendly.com/acme/intro", "public": ""},
            config=SweepConfig(batch=500, max_batches=1000, concurrency=CONCURRENCY),
        )
        started = time.perf_counter()
        result = await sweeper.sweep(NOW)
        elapsed = time.perf_counter() - started
        async with sessions() as session:
            states = dict(
                (
                    await session.execute(
                        select(OutboxItem.state, func.count()).group_by(OutboxItem.state)
                    )
                ).all()
            )
    finally:
        await channel.aclose()
        await engine.dispose()
        received = sink.stop()
    assert result.sent == due == received == states.get("sent"), (result, received, states)
    return {
        "sent": result.sent,
        "seconds": elapsed,
        "per_s": result.sent / elapsed,
        "peak_rss_mb": peak_rss_mb(),
        "smtp_connects": channel.pool.connects,
    }


async def apscheduler(due: int) -> dict[str, float]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    sink = SinkProcess()
    sender = EmailSender.parse("Sam <sam@acme.example>")
    pool = SmtpPool(
        SmtpConfig.from_url(f"smtp://127.0.0.1:{sink.port}"),
        local_hostname=sender.domain,
        size=CONNECTIONS,
        keepalive=10.0,
    )
    rss_before = peak_rss_mb()
    done = asyncio.Event()
    sent = 0

    async def job(i: int) -> None:
        nonlocal sent
        address = f"lead{i}@example.com"
        payload = {"subject": "Following up", "text": f"Hi Lead {i}, following up."}
        outgoing = compose(
            sender,
            address,
            payload,
            now=datetime.now(UTC),
            lead_token=f"t{i}",
            unsubscribe=False,
            unsubscribe_url=None,
        )
        await pool.submit(outgoing.message, sender=sender.address, recipient=address)
        sent += 1
        if sent == due:
            done.set()

    scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={"misfire_grace_time": None})
    started = time.perf_counter()
    scheduler.start()
    now = datetime.now(UTC)
    for i in range(due):
        scheduler.add_job(job, "date", run_date=now, args=[i], id=f"lead:{i}:touch:day3")
    added = time.perf_counter() - started
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - started
    scheduler.shutdown(wait=False)
    await pool.aclose()
    assert sink.stop() == due
    return {
        "add_s": added,
        "seconds": elapsed,
        "per_s": due / elapsed,
        "peak_rss_mb": peak_rss_mb(),
        "rss_growth_mb": peak_rss_mb() - rss_before,
    }


def run_phase(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.bench_sweep", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    """Run every phase, each in its own process, and print the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--phase", choices=["populate", "sweep", "apscheduler", "sink"])
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    if args.phase == "sink":
        serve_sink()
        return
    if args.phase == "populate":
        print(json.dumps(asyncio.run(populate(args.url, args.leads, args.due))))  # noqa: T201
        return
    if args.phase == "sweep":
        print(json.dumps(asyncio.run(sweep(args.url, args.due))))  # noqa: T201
        return
    if args.phase == "apscheduler":
        print(json.dumps(asyncio.run(apscheduler(args.due))))  # noqa: T201
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        counts = ["--leads", str(args.leads), "--due", str(args.due)]
        populated = run_phase("--phase", "populate", "--url", url, *counts)
        print(
            f"SQLite: {args.leads:,} leads + {args.leads:,} touches inserted in "  # noqa: T201
            f"{populated['insert_s']:.1f} s ({populated['rows_per_s']:,.0f} rows/s); "
            f"one claim of 500 at full size: {populated['claim_ms_median']:.1f} ms (median of 5)"
        )
        swept = run_phase("--phase", "sweep", "--url", url, *counts)
        print(
            f"SQLite sweep: {swept['sent']:,.0f} touches drafted and sent over SMTP in "  # noqa: T201
            f"{swept['seconds']:.2f} s = {swept['per_s']:,.0f}/s; "
            f"sweeper process peak RSS {swept['peak_rss_mb']:.0f} MB; "
            f"{swept['smtp_connects']:.0f} SMTP connections opened"
        )
    aps = run_phase("--phase", "apscheduler", *counts)
    print(
        f"APScheduler, one date job per touch (MemoryJobStore): {args.due:,} jobs added in "  # noqa: T201
        f"{aps['add_s']:.2f} s, all sent in {aps['seconds']:.2f} s = {aps['per_s']:,.0f}/s; "
        f"peak RSS {aps['peak_rss_mb']:.0f} MB (+{aps['rss_growth_mb']:.0f} MB for the jobs)"
    )


if __name__ == "__main__":
    main()
