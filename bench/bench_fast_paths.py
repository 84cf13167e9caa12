"""Each fast path next to the plain library path it replaces, on the same operation.

    .venv/bin/python -m bench.bench_fast_paths                   # all three, 7 rounds
    .venv/bin/python -m bench.bench_fast_paths inbox --rounds 11

- ``sqlite``: a transaction of 1 and of 20 statements (half SELECT by key, half INSERT) on an
  SQLite store, run inline (:mod:`scheduler.store.sqlite_inline`) and on aiosqlite's worker
  thread (its own way), sequentially and 8 at a time;
- ``inbox``: a webhook batch of 1 and of 16 messages appended on the driver connection
  (:mod:`scheduler.store.inbox_driver`) and through SQLAlchemy Core (one
  ``INSERT … RETURNING``), on SQLite and Postgres (skipped when not reachable);
- ``graph``: a WhatsApp text message sent by the channel (pywa) through
  :class:`bot.channels.graph_http.GraphHttpClient` (aiohttp) and through a plain
  ``httpx.AsyncClient``, to a Graph-like server in a child process (its CPU is not
  counted), one at a time and 16 at a time.

Two more of the project's own faster ways, whose figures used to sit in docstrings:

- ``email``: an outbox email composed as :mod:`bot.channels.email_message` does (compat32
  classes, :mod:`bot.channels.smtp`'s ASCII header fold) and as ``EmailMessage`` with the
  modern policy would, to the bytes handed to SMTP;
- ``gc``: a full collection of the service's heap right after start, as it is and frozen
  (:func:`bot.app.freeze_heap`).

Printed per case: CPU (this process, every thread) and wall time per operation, each the
median of ``--rounds`` rounds; a round runs both variants, in alternating order, so a slow
spell of the shared machine falls on both. The load average is printed before and after.

The service's end-to-end figures with a fast path switched off come from the other benches
(``--compare-plain``): :mod:`bench.bench_webhook` (webhook throughput: inbox, sqlite) and
:mod:`bench.bench_reply_latency` (CPU a conversation: sqlite, graph). They switch a path off
with :func:`force_plain`, which makes its seam's check fail, the way an unexpected library
version would. Results and decisions: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store

FAST_PATHS = ("sqlite", "inbox", "graph")
OTHERS = ("email", "gc")


def force_plain(names: Iterable[str]) -> None:
    """Make each named fast path's seam report it unusable, so the service takes the plain
    library path (in this process, for engines and clients created from now on)."""
    for name in names:
        if name == "sqlite":
            from scheduler.store import sqlite_inline

            sqlite_inline.available = lambda: False  # type: ignore[assignment]
        elif name == "inbox":
            from scheduler.store import inbox_driver

            inbox_driver.usable = lambda connection: False  # type: ignore[assignment]
        elif name == "graph":
            from bot.channels import graph_http

            graph_http.available = lambda: False  # type: ignore[assignment]
        elif name:
            raise SystemExit(f"unknown fast path {name!r}: one of {', '.join(FAST_PATHS)}")


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


Run = Callable[[], Awaitable[tuple[float, float]]]


async def compare(label: str, variants: dict[str, Run], rounds: int) -> None:
    """Run each variant once a round (order alternating); print the medians a variant."""
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            results[name].append(await variants[name]())
    fast_cpu = statistics.median(cpu for cpu, _ in results[names[0]])
    for name in names:
        cpu = statistics.median(c for c, _ in results[name])
        wall = statistics.median(w for _, w in results[name])
        spread = f"{_us(min(c for c, _ in results[name]))}-{_us(max(c for c, _ in results[name]))}"
        ratio = "" if name == names[0] else f"  fast path uses {fast_cpu / cpu:.0%} of its CPU"
        print(
            f"{label:30} {name:8} CPU {_us(cpu):>7} µs ({spread:>11})  "
            f"wall {_us(wall):>7} µs{ratio}"
        )


def _us(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


async def _timed(work: Callable[[], Awaitable[None]], operations: int) -> tuple[float, float]:
    """CPU and wall µs per operation of ``work`` (which runs ``operations`` of them)."""
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    return (
        (time.process_time() - cpu) / operations * 1e6,
        (time.perf_counter() - wall) / operations * 1e6,
    )


# -- sqlite: inline against aiosqlite's thread ------------------------------------------------


async def bench_sqlite(rounds: int) -> None:
    """Transactions of 1 and 20 statements, inline and on aiosqlite's thread."""
    from scheduler.store import engine as store_engine
    from scheduler.store import sqlite_inline

    with tempfile.TemporaryDirectory() as folder:
        engines: dict[str, AsyncEngine] = {}
        for name, inline in (("inline", True), ("thread", False)):
            checked = sqlite_inline.available
            sqlite_inline.available = lambda inline=inline: inline  # type: ignore[misc]
            try:
                engines[name] = store_engine.create_engine(
                    f"sqlite+aiosqlite:///{folder}/{name}.db"
                )
            finally:
                sqlite_inline.available = checked  # type: ignore[method-assign]
            async with engines[name].begin() as connection:
                await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INT)"))
        for statements, operations in ((1, 400), (20, 100)):
            for concurrency in (1, 8):
                variants = {
                    name: _sqlite_run(engine, statements, operations, concurrency)
                    for name, engine in engines.items()
                }
                label = f"sqlite tx of {statements:2} statements, {concurrency} at once"
                await compare(label, variants, rounds)
        for engine in engines.values():
            await engine.dispose()


def _sqlite_run(engine: AsyncEngine, statements: int, operations: int, concurrency: int) -> Run:
    async def transaction() -> None:
        async with engine.begin() as connection:
            for i in range(statements):
                if i % 2:
                    await connection.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": i})
                else:
                    await connection.execute(text("SELECT v FROM t WHERE id = :i"), {"i": i})

    async def worker(count: int) -> None:
        for _ in range(count):
            await transaction()

    async def work() -> None:
        await asyncio.gather(*(worker(operations // concurrency) for _ in range(concurrency)))

    async def run() -> tuple[float, float]:
        await worker(10)  # warm: statement caches, pool
        return await _timed(work, operations)

    return run


# -- inbox: driver connection against Core ------------------------------------------------


async def bench_inbox(rounds: int) -> None:
    """Batches of 1 and 16 messages on the driver connection and through Core."""
    backends = {"sqlite": None, "postgres": POSTGRES_URL}
    with tempfile.TemporaryDirectory() as folder:
        backends["sqlite"] = f"sqlite+aiosqlite:///{folder}/inbox.db"
        for backend, url in backends.items():
            if backend == "postgres" and not await postgres_reachable():
                print(f"inbox on postgres: skipped, {POSTGRES_URL} not reachable")
                continue
            assert url is not None
            async with scratch_store(url) as engine:
                for batch in (1, 16):
                    variants = {
                        "driver": _inbox_run(engine, batch, on_driver=True),
                        "core": _inbox_run(engine, batch, on_driver=False),
                    }
                    await compare(f"inbox {backend} batch of {batch:2}", variants, rounds)


def _inbox_run(engine: AsyncEngine, batch: int, *, on_driver: bool) -> Run:
    from scheduler.store.inbox import InboxAppender, Received

    now = datetime.now(UTC)
    payload = {"from": "14155550100", "type": "text", "text": {"body": "Hi, I saw your ad"}}

    def batches(count: int) -> list[list[Received]]:
        run = uuid.uuid4().hex[:8]
        return [
            [Received(f"wamid.{run}.{i}.{j}", f"+1415555{j:04d}", payload) for j in range(batch)]
            for i in range(count)
        ]

    def append_all(appender: InboxAppender, work: list[list[Received]]) -> None:
        for messages in work:
            if len(appender.append("whatsapp", messages, now)) != batch:
                raise AssertionError("a batch stored fewer new rows than it held")
        appender.close()

    async def run() -> tuple[float, float]:
        # As the webhook's writer: one appender, kept connection between batches (Postgres).
        appender = InboxAppender(engine.sync_engine)
        appender.on_driver = on_driver
        await greenlet_spawn(append_all, appender, batches(20))  # warm
        work = batches(300)
        return await _timed(lambda: greenlet_spawn(append_all, appender, work), len(work))

    return run


# -- graph: pywa's calls on aiohttp against httpx ------------------------------------------------

_GRAPH_SERVER = """
import asyncio, itertools, sys
from aiohttp import web
ids = itertools.count()
async def messages(request):
    await request.read()
    return web.json_response({"messaging_product": "whatsapp",
        "contacts": [{"input": "14155550100", "wa_id": "14155550100"}],
        "messages": [{"id": f"wamid.{next(ids)}"}]})
async def main():
    app = web.Application()
    app.router.add_post("/{version}/{phone_id}/messages", messages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"""


async def bench_graph(rounds: int) -> None:
    """Text messages sent by the channel on aiohttp and on httpx, 1 and 16 at a time."""
    from bot.channels import graph_http
    from bot.channels.whatsapp import WhatsAppChannel

    server = subprocess.Popen(
        [sys.executable, "-c", _GRAPH_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    channels: dict[str, WhatsAppChannel] = {}
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}"
        for name, fast in (("aiohttp", True), ("httpx", False)):
            checked = graph_http.available
            graph_http.available = lambda fast=fast: fast  # type: ignore[misc]
            try:
                channels[name] = WhatsAppChannel(phone_id="1065", token="t", api_url=url, rate=1e6)
            finally:
                graph_http.available = checked  # type: ignore[method-assign]
        for concurrency in (1, 16):
            variants = {name: _graph_run(ch, concurrency) for name, ch in channels.items()}
            await compare(f"graph send, {concurrency:2} at once", variants, rounds)
    finally:
        for channel in channels.values():
            await channel.aclose()
        server.stdin.write("\n")
        server.stdin.flush()
        server.wait(timeout=30)


def _graph_run(channel: Any, concurrency: int, operations: int = 400) -> Run:
    payload = {"kind": "text", "text": "Thanks! How many people are on your team?"}

    async def worker(count: int, who: int) -> None:
        for i in range(count):
            await channel.send(f"+1415{who:03d}{i:04d}", payload)

    async def work() -> None:
        await asyncio.gather(*(worker(operations // concurrency, k) for k in range(concurrency)))

    async def run() -> tuple[float, float]:
        await worker(20, 999)  # warm: connections, pywa's objects
        return await _timed(work, operations)

    return run


# -- email: compat32 composition against the modern policy ---------------------------------------


async def bench_email(rounds: int) -> None:
    """One outbox email (text + HTML, unsubscribe headers) to its SMTP bytes, both ways."""
    from email.message import EmailMessage
    from email.policy import SMTP, Compat32

    from bot.channels.email_message import EmailSender, compose
    from bot.channels.smtp import _WIRE, to_wire

    sender = EmailSender.parse("Dana from Acme <dana@acme.example>")
    now = datetime.now(UTC)
    payload = {
        "subject": "Quick question about your team's reporting workflow",
        "text": "Hi Jane,\n\nthanks for your interest. Would a short call next week help?\n",
        "html": "<p>Hi Jane,</p><p>thanks for your interest. A short call next week?</p>",
        "to_name": "Jane Doe",
    }
    link = "https://leadbot.example/u/k3J9abcdef"

    def ours() -> None:
        email = compose(
            sender,
            "jane@example.com",
            payload,
            now=now,
            lead_token="k3J9",
            unsubscribe=True,
            unsubscribe_url=link,
        )
        to_wire(email.message)

    def modern() -> None:
        message = EmailMessage(policy=SMTP)
        message["From"] = sender.from_header
        message["To"] = "Jane Doe <jane@example.com>"
        message["Subject"] = payload["subject"]
        message["Date"] = now
        message["Message-ID"] = "<0123456789abcdef@acme.example>"
        message["Reply-To"] = "reply+k3J9@acme.example"
        message["List-Unsubscribe"] = f"<{link}>, <mailto:reply+k3J9@acme.example>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(payload["text"])
        message.add_alternative(payload["html"], subtype="html")
        message.as_bytes()

    def repeat(build: Callable[[], None], operations: int = 500) -> Run:
        async def work() -> None:
            for _ in range(operations):
                build()

        return lambda: _timed(work, operations)

    await compare(
        "email composed to bytes", {"compat32": repeat(ours), "modern": repeat(modern)}, rounds
    )
    stock = Compat32(linesep="\r\n", cte_type="7bit")
    subject = str(payload["subject"])
    await compare(
        "email ASCII header folded",
        {
            "ours": repeat(lambda: _WIRE.fold_binary("Subject", subject), 5000),
            "stock": repeat(lambda: stock.fold_binary("Subject", subject), 5000),
        },
        rounds,
    )


# -- gc: the service's heap, frozen or not ---------------------------------------------------


async def bench_gc(rounds: int) -> None:
    """A full ``gc.collect()`` right after the app is built, frozen and not."""
    import gc

    from bot.app import create_app
    from bot.settings import Settings

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None,
            database_url=f"sqlite+aiosqlite:///{folder}/gc.db",
            api_token="t",
            secret_key="s" * 32,
        )
        app = create_app(settings, run_scheduler=False)

        def collect(frozen: bool) -> Run:
            async def work() -> None:
                gc.collect()

            async def run() -> tuple[float, float]:
                gc.collect()
                if frozen:
                    gc.freeze()
                try:
                    return await _timed(work, 1)
                finally:
                    gc.unfreeze()

            return run

        print(f"gc: {len(gc.get_objects()):,} objects tracked after building the app")
        await compare(
            "full gc.collect()", {"frozen": collect(True), "as is": collect(False)}, rounds
        )
        del app


async def main(args: argparse.Namespace) -> None:
    """Run the chosen comparisons."""
    print(f"fast path against plain, median of {args.rounds} rounds; load {loadavg()}")
    benches = {
        "sqlite": bench_sqlite,
        "inbox": bench_inbox,
        "graph": bench_graph,
        "email": bench_email,
        "gc": bench_gc,
    }
    for name in args.paths:
        await benches[name](args.rounds)
    print(f"load {loadavg()}")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    names = (*FAST_PATHS, *OTHERS)
    parser.add_argument("paths", nargs="*", help=f"some of: {' '.join(names)} (default: all)")
    parser.add_argument("--rounds", type=int, default=7)
    arguments = parser.parse_args()
    unknown = sorted(set(arguments.paths) - set(names))
    if unknown:
        parser.error(f"unknown comparison {unknown[0]!r}: one of {', '.join(names)}")
    arguments.paths = arguments.paths or list(names)
    return arguments


if __name__ == "__main__":
    asyncio.run(main(_parse()))
