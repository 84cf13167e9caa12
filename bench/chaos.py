"""The chaos run: leadbot's guarantees under crashes, duplicates and a failing Graph API.

    .venv/bin/python -m bench.chaos                       # 300 prospects, ~2.5 min of traffic
    .venv/bin/python -m bench.chaos --prospects 50 --traffic-seconds 40 --kill-every 10

What runs (everything on 127.0.0.1):

- a Postgres role and schema of its own (``LEADBOT_CHAOS_POSTGRES_URL``, else
  ``LEADBOT_TEST_POSTGRES_URL``, else the local test database), migrated, with one rep;
- Redis (``--redis-url``: ``LEADBOT_CHAOS_REDIS_URL``, else ``LEADBOT_TEST_REDIS_URL``, else
  database 14 on 127.0.0.1); every run uses phone numbers of its own, so runs (and tests
  sharing the database) never share a lock key;
- two ``leadbot serve --no-scheduler`` and one ``leadbot scheduler``, configured through
  ``LEADBOT_*`` variables only, with a real WhatsApp channel (phone id, token, app secret)
  pointed at the fake Graph API of ``tests/support/fakes/graph_api.py``, a send timeout of
  ``--send-timeout`` seconds, and a compressed copy of the cadence (one day =
  ``--day-seconds`` seconds) so follow-up steps fall due during the run;
- the fake Graph API with a fault plan: some sends answered 500 (Graph error body), some
  429 (130429), a few hanging ``--hang-seconds`` (past the send timeout);
- ``--prospects`` WhatsApp prospects through the signed webhook (see ``bench.chaos_traffic``):
  taps and free text answering the bot's questions, bursts, questions, STOP, silence; some
  bodies batching two senders, a fifth delivered again to the other worker;
- email leads through ``POST /api/leads`` whose cadence runs, and a rep approving drafts;
- every ``--kill-every`` seconds (± 30 %) one of the three processes is killed with SIGKILL
  and started again.

After ``--traffic-seconds`` the faults and kills stop; conversations finish and the system
drains (at most ``--drain-seconds``). Then ``bench.chaos_audit`` reads the store, Redis
and the fake's log, prints the figures and checks the assertions; the exit code is 1 when
one fails (2 when the run itself could not be carried out). ``--seed`` makes the
conversations, the faults and the kill schedule repeatable (timing still varies). The whole
run is bounded by ``--timeout``; every child is killed on the way out, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from sqlalchemy import func, select, text

from bench.chaos_audit import ASSERTIONS, Audit, audit
from bench.chaos_cluster import ROOT, Cluster, child_env, compress_cadence, scratch_role
from bench.chaos_traffic import Mailman, Rep, Router, make_prospects
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.migrate import upgrade
from scheduler.store.models import InboxItem, OutboxItem, Touch, utcnow
from scheduler.store.reps import add_rep
from tests.support.fakes.graph_api import FakeGraphAPI, FaultPlan

POSTGRES_URL = os.environ.get(
    "LEADBOT_CHAOS_POSTGRES_URL",
    os.environ.get("LEADBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1/test"),
)
REDIS_URL = os.environ.get(
    "LEADBOT_CHAOS_REDIS_URL",
    os.environ.get("LEADBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/14"),
)
APP_SECRET = "chaos-app-secret"
API_TOKEN = "chaos-api-token"
REP_WHATSAPP = "+14155550100"
LOCK_PREFIX = "leadbot:lock:"


@dataclass
class Options:
    """Everything that sizes a run (the CLI's options; tests build one directly)."""

    prospects: int = 300
    email_leads: int = 40
    traffic_seconds: float = 150.0
    drain_seconds: float = 90.0
    kill_every: float = 20.0
    seed: int = 1
    send_timeout: float = 2.0
    hang_seconds: float = 3.0
    server_error: float = 0.06
    rate_limited: float = 0.03
    hang: float = 0.02
    duplicate_share: float = 0.2
    batch_share: float = 0.15
    day_seconds: float = 3.0
    min_offset: int = 6
    sweep_seconds: float = 1.0
    lease_seconds: int = 10
    reply_timeout: float = 45.0
    think: tuple[float, float] = (0.3, 2.0)
    timeout: float = 900.0
    postgres_url: str = POSTGRES_URL
    redis_url: str = REDIS_URL
    workdir: Path | None = None
    keep: bool = False
    quiet: bool = False


@dataclass
class Run:
    """What a finished run produced."""

    audit: Audit
    figures: dict[str, Any] = field(default_factory=dict)
    workdir: Path | None = None

    @property
    def failed(self) -> list[str]:
        """The assertions that failed."""
        return [a for a in ASSERTIONS if self.audit.count(a)]


def _say(options: Options, message: str) -> None:
    if not options.quiet:
        print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


async def run(options: Options) -> Run:
    """Carry out one chaos run (see the module docstring) and audit it."""
    async with asyncio.timeout(options.timeout):
        workdir = options.workdir or Path(tempfile.mkdtemp(prefix="leadbot-chaos-"))
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            result = await _run(options, workdir)
        except BaseException:
            _say(options, f"logs kept in {workdir}")
            raise
        if not options.keep and not result.failed:
            shutil.rmtree(workdir, ignore_errors=True)
            result.workdir = None
        return result


async def _run(options: Options, workdir: Path) -> Run:
    run_id = uuid.uuid4().hex[:6]
    # Per run (not per seed), so runs sharing a Redis never share a lock key; never 555,
    # the exchange of the numbers other tests use.
    exchange = random.Random().choice([x for x in range(200, 1000) if x != 555])
    faults = FaultPlan(
        seed=options.seed,
        server_error=options.server_error,
        rate_limited=options.rate_limited,
        hang=options.hang,
        hang_seconds=options.hang_seconds,
    )
    async with scratch_role(options.postgres_url) as url, FakeGraphAPI(faults=faults) as graph:
        engine = create_engine(url, pool_size=2)
        try:
            await upgrade(engine)
            async with session_factory(engine).begin() as session:
                await add_rep(
                    session,
                    name="Chaos Rep",
                    email="rep@chaos.example.com",
                    whatsapp=REP_WHATSAPP,
                    now=utcnow(),
                )
            cadence = compress_cadence(
                ROOT / "scheduler" / "followups" / "cadences" / "default.yaml",
                workdir / "cadence",
                day_seconds=options.day_seconds,
                min_seconds=options.min_offset,
            )
            env = child_env(_settings(options, url, graph, cadence))
            (workdir / "env.json").write_text(json.dumps(env, indent=1))
            cluster = Cluster(env, workdir)
            try:
                return await _drive(
                    options,
                    engine=engine,
                    cluster=cluster,
                    graph=graph,
                    faults=faults,
                    run_id=run_id,
                    exchange=exchange,
                )
            finally:
                cluster.stop_all()
        finally:
            await engine.dispose()


def _settings(options: Options, url: str, graph: FakeGraphAPI, cadence: Path) -> dict[str, str]:
    return {
        "LEADBOT_DATABASE_URL": url,
        "LEADBOT_REDIS_URL": options.redis_url,
        "LEADBOT_API_TOKEN": API_TOKEN,
        "LEADBOT_SECRET_KEY": "chaos-secret-key-" + "k" * 32,
        "LEADBOT_PUBLIC_URL": "http://127.0.0.1",
        "LEADBOT_WHATSAPP_PHONE_ID": graph.phone_id,
        "LEADBOT_WHATSAPP_TOKEN": graph.token,
        "LEADBOT_WHATSAPP_APP_SECRET": APP_SECRET,
        "LEADBOT_WHATSAPP_API_URL": graph.base_url,
        "LEADBOT_WHATSAPP_TIMEOUT": str(options.send_timeout),
        "LEADBOT_WHATSAPP_RATE": "200",
        "LEADBOT_REP_TEMPLATE": "rep_alert",
        "LEADBOT_WHATSAPP_TEMPLATE": "follow_up",
        "LEADBOT_CALENDLY_URL": "https://calendly.com/chaos/intro",
        "LEADBOT_EMAIL_FROM": "sam@chaos.example.com",
        "LEADBOT_CADENCE_FILE": str(cadence),
        "LEADBOT_SWEEP_SECONDS": str(options.sweep_seconds),
        "LEADBOT_TOUCH_LEASE_SECONDS": str(options.lease_seconds),
        "LEADBOT_DORMANT_CHECK_SECONDS": "2",
        "LEADBOT_REACTIVATION_CHECK_SECONDS": "5",
        "LEADBOT_FIRST_TOUCH_CHECK_SECONDS": "5",
    }


async def _drive(
    options: Options,
    *,
    engine: Any,
    cluster: Cluster,
    graph: FakeGraphAPI,
    faults: FaultPlan,
    run_id: str,
    exchange: int,
) -> Run:
    _say(options, f"starting 2 web workers and a scheduler (logs: {cluster.workdir})")
    await cluster.start_all()
    prospects = make_prospects(
        options.prospects,
        seed=options.seed,
        run_id=run_id,
        exchange=exchange,
        spread=max(1.0, options.traffic_seconds * 0.7),
    )
    urls = [cluster.url(p, "/webhooks/whatsapp") for p in cluster.serves]
    mailman = Mailman(
        urls,
        APP_SECRET,
        seed=options.seed,
        duplicate_share=options.duplicate_share,
        batch_share=options.batch_share,
    )
    await mailman.start()
    router = asyncio.create_task(Router(graph, prospects).run())
    rep = Rep(
        lambda: [cluster.url(p, "") for p in cluster.serves],
        API_TOKEN,
        seed=options.seed,
        run_id=run_id,
    )
    traffic_over = asyncio.Event()
    kills: list[tuple[float, str]] = []
    _say(
        options,
        f"traffic: {options.prospects} prospects, {options.email_leads} email leads, "
        f"{options.traffic_seconds:.0f}s, a kill every ~{options.kill_every:.0f}s",
    )
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        talks = [
            asyncio.create_task(p.run(mailman, options.reply_timeout, options.think, traffic_over))
            for p in prospects
        ]
        background = [
            asyncio.create_task(
                rep.leads(http, options.email_leads, options.traffic_seconds * 0.6)
            ),
            asyncio.create_task(rep.approve(http, 3.0, traffic_over)),
            asyncio.create_task(_killer(options, cluster, traffic_over, kills)),
        ]
        try:
            await asyncio.sleep(options.traffic_seconds)
            traffic_over.set()
            faults.enabled = False
            _say(options, f"traffic over after {len(kills)} kills; faults off; draining")
            for proc in cluster.procs:
                if not proc.alive:
                    cluster.start(proc)
            await asyncio.gather(*background, return_exceptions=True)
            drain_until = time.monotonic() + options.drain_seconds
            pending = [t for t in talks if not t.done()]
            if pending:
                await asyncio.wait(pending, timeout=max(1.0, drain_until - time.monotonic()))
            await _quiesce(options, engine, drain_until)
        finally:
            for task in [*talks, *background, router]:
                task.cancel()
            await asyncio.gather(*talks, *background, router, return_exceptions=True)
            await mailman.close()
    elapsed = time.perf_counter() - started
    exits = {name: code for name, code in cluster.exits().items() if code is not None}
    lock_keys = await _lock_keys(options.redis_url, exchange) + await _held_rows(engine)
    end = await _db_now(engine)
    tolerance = timedelta(seconds=options.sweep_seconds + options.lease_seconds)
    result = await audit(
        engine,
        list(graph.requests),
        prospects,
        tolerance=tolerance,
        end=end,
        hang_window=options.hang_seconds + options.send_timeout,
        lock_keys=lock_keys,
        kills=len(kills),
    )
    figures: dict[str, Any] = {
        "seed": options.seed,
        "run seconds (traffic + drain)": f"{elapsed:.0f}",
        "kills": ", ".join(f"{t:.0f}s {name}" for t, name in kills) or "none",
        "processes exited on their own": exits or "none",
        "webhook bodies / batched / delivered twice": (
            f"{mailman.stats.bodies} / {mailman.stats.batched} / {mailman.stats.duplicates}"
        ),
        "webhook POSTs retried / refused / given up": (
            f"{mailman.stats.retries} / {mailman.stats.refused or 0} / {mailman.stats.given_up}"
        ),
        "fault plan drawn": faults.counts,
        "email leads created / approvals": (f"{rep.stats.leads_created} / {rep.stats.approved}"),
        **_log_figures(cluster),
    }
    figures.update(result.figures)
    _say(options, "audit done")
    return Run(result, figures, cluster.workdir)


def _log_figures(cluster: Cluster) -> dict[str, str]:
    """One line per log symptom, with its count in each process (omitted when none)."""
    counts = cluster.log_counts()
    figures = {}
    for symptom in next(iter(counts.values()), {}):
        per_process = {name: c[symptom] for name, c in counts.items() if c[symptom]}
        if per_process:
            figures[f"log: {symptom}"] = ", ".join(f"{n} {c}" for n, c in per_process.items())
    return figures


async def _killer(
    options: Options, cluster: Cluster, stop: asyncio.Event, kills: list[tuple[float, str]]
) -> None:
    rng = random.Random(f"{options.seed}:kills")
    started = time.perf_counter()
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), options.kill_every * rng.uniform(0.7, 1.3))
            return
        except TimeoutError:
            pass
        proc = rng.choice(cluster.procs)
        cluster.kill(proc)
        kills.append((time.perf_counter() - started, proc.name))
        _say(options, f"SIGKILL {proc.name}; restarting it")
        cluster.start(proc)


async def _quiesce(options: Options, engine: Any, until: float) -> None:
    """Wait (until ``until``) for no unprocessed inbox row, no outbox row pending or sending,
    no touch claimed or due; then a few more seconds for in-flight answers to land."""
    sessions = session_factory(engine)
    while time.monotonic() < until:
        async with sessions() as db:
            now = utcnow()
            busy = await db.scalar(
                select(func.count()).select_from(InboxItem).where(InboxItem.processed_at.is_(None))
            )
            busy = (busy or 0) + (
                await db.scalar(
                    select(func.count())
                    .select_from(OutboxItem)
                    .where(OutboxItem.state.in_(("pending", "sending")))
                )
                or 0
            )
            busy += (
                await db.scalar(
                    select(func.count())
                    .select_from(Touch)
                    .where(
                        (Touch.status == "claimed")
                        | ((Touch.status == "pending") & (Touch.due_at <= now))
                    )
                )
                or 0
            )
        if not busy:
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(min(3.0, max(0.0, until - time.monotonic())))


async def _held_rows(engine: Any) -> list[str]:
    """The run's Postgres sessions that keep one transaction open, or keep waiting for a
    lock, over two looks 2 s apart (a lead row held by a process that will not let go)."""
    query = text(
        "SELECT pid, state, wait_event_type, xact_start, left(query, 60) AS query "
        "FROM pg_stat_activity WHERE usename = current_user AND pid <> pg_backend_pid() "
        "AND (state LIKE 'idle in transaction%' OR wait_event_type = 'Lock')"
    )
    async with engine.connect() as connection:
        first = {(r.pid, r.xact_start) for r in await connection.execute(query)}
        await asyncio.sleep(2.0)
        second = list(await connection.execute(query))
    return [
        f"Postgres session {r.pid} {r.state} ({r.wait_event_type}) since "
        f"{r.xact_start:%H:%M:%S}: {r.query}"
        for r in second
        if (r.pid, r.xact_start) in first
    ]


async def _lock_keys(url: str, exchange: int) -> list[str]:
    client = aioredis.from_url(url, socket_connect_timeout=2)
    try:
        keys = [k.decode() async for k in client.scan_iter(match=f"{LOCK_PREFIX}*", count=1000)]
        mine = [k for k in keys if f"1415{exchange:03d}" in k]
        if mine:
            await client.delete(*mine)  # after counting: the next run starts clean
        return mine
    finally:
        await client.aclose()


async def _db_now(engine: Any) -> Any:
    async with engine.connect() as connection:
        return (await connection.execute(text("SELECT now()"))).scalar_one()


def report(result: Run) -> str:
    """The figures and the assertions as a compact table."""
    lines = ["", "== chaos run: figures =="]
    width = max(len(k) for k in result.figures) + 2
    for key, value in result.figures.items():
        lines.append(f"  {key:<{width}}{value}")
    lines.append("== assertions (each must be 0) ==")
    for assertion in ASSERTIONS:
        count = result.audit.count(assertion)
        lines.append(f"  {'FAIL' if count else 'ok  '}  {assertion:<24}{count}")
        for example in result.audit.failures.get(assertion, [])[:5]:
            lines.append(f"          - {example}")
        if count > 5:
            lines.append(f"          … and {count - 5} more")
    verdict = "FAILED: " + ", ".join(result.failed) if result.failed else "PASSED"
    lines.append(f"== {verdict} ==")
    if result.workdir is not None:
        lines.append(f"logs: {result.workdir}")
    return "\n".join(lines)


def _parse(argv: list[str] | None = None) -> Options:
    defaults = Options()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    add = parser.add_argument
    add("--prospects", type=int, default=defaults.prospects)
    add("--email-leads", type=int, default=defaults.email_leads)
    add("--traffic-seconds", type=float, default=defaults.traffic_seconds)
    add("--drain-seconds", type=float, default=defaults.drain_seconds)
    add(
        "--kill-every",
        type=float,
        default=defaults.kill_every,
        help="seconds between SIGKILLs (0: none)",
    )
    add("--seed", type=int, default=defaults.seed)
    add(
        "--send-timeout",
        type=float,
        default=defaults.send_timeout,
        help="LEADBOT_WHATSAPP_TIMEOUT",
    )
    add("--hang-seconds", type=float, default=defaults.hang_seconds)
    add("--server-error", type=float, default=defaults.server_error, help="share of sends")
    add("--rate-limited", type=float, default=defaults.rate_limited, help="share of sends")
    add("--hang", type=float, default=defaults.hang, help="share of sends")
    add(
        "--day-seconds",
        type=float,
        default=defaults.day_seconds,
        help="one cadence day lasts this long",
    )
    add("--timeout", type=float, default=defaults.timeout, help="hard limit of the whole run")
    add("--postgres-url", default=defaults.postgres_url)
    add("--redis-url", default=defaults.redis_url)
    add("--workdir", type=Path, default=None, help="logs (default: a temporary directory)")
    add("--keep", action="store_true", help="keep the logs even when the run passes")
    args = parser.parse_args(argv)
    options = Options(**{k: v for k, v in vars(args).items()})
    if options.kill_every <= 0:
        options.kill_every = 1e9
    return options


def main(argv: list[str] | None = None) -> int:
    """Run, print, and return the exit code (0 pass, 1 an assertion failed, 2 no run)."""
    options = _parse(argv)
    # Ctrl-C, and SIGTERM too, end the run through its clean-up (children killed, the
    # scratch role and schema dropped), even when started in the background (where SIGINT
    # comes in ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        result = asyncio.run(run(options))
    except KeyboardInterrupt:
        print("interrupted: every child process was killed", file=sys.stderr)
        return 2
    except Exception as exc:  # the run itself broke: say so, distinctly from a failed check
        print(f"chaos run could not complete: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
