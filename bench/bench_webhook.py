"""WhatsApp webhook ingest: throughput and latency of the 200, next to a bare aiohttp handler.

    .venv/bin/python -m bench.bench_webhook                      # both backends, 16 and 64
    .venv/bin/python -m bench.bench_webhook --messages 5000 --concurrency 32 --backends sqlite
    .venv/bin/python -m bench.bench_webhook --burst-ms 400       # turns during the load

Each server runs in its own subprocess (so the load generator does not share its event
loop): the bare handler only reads the body and answers 200; leadbot (started as ``leadbot
serve`` starts it, heap frozen) verifies the signature, parses, stores the message in the
inbox (group commit) and answers 200 while its inbox processor handles the turns in the
background (the real load: leads, sessions, replies). Bodies are signed, from ``--senders``
distinct people. Printed: requests/s, p50/p99 of the 200, server CPU per request, and
leadbot/bare throughput (target >= 0.5), each the median of ``--rounds`` rounds.

A round starts fresh processes for both servers, side by side, and loads them in turns,
``--chunks`` turns each: on a shared 2-core machine the speed drifts by ±20 % within a
minute, and taking turns puts every slow spell on both sides of the ratio. Postgres is
skipped when not reachable.

``--concurrency`` is how many deliveries are in flight (several values: a row each). At 16
the closed loop is bound by latency (the 200 waits for its commit, and neither server nor
load generator is busy all the time); at 64 the service is saturated, which is what its
throughput is.

``--burst-ms`` is the service's burst window. By default (10000 ms) every turn is held until
after the load: the ingest path alone, as the bare handler does no dialog work either.
``--burst-ms 400`` (production's window) runs the turns during the load on the same core.

``--compare-plain inbox,sqlite`` runs leadbot with those fast paths switched off
(:func:`bench.bench_fast_paths.force_plain`) in place of the bare handler: the ratio is
then the fast service's throughput over the plain one's (``bench/README.md``). ``--plain``
switches fast paths off in both (to compare one fast path with another already off).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import func, select

from bench.bench_fast_paths import loadavg
from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store

APP_SECRET = "bench-secret"


# -- servers (child processes) ------------------------------------------------------------------


async def _serve(kind: str, backend: str, workdir: Path) -> None:
    from bench.bench_fast_paths import force_plain

    force_plain(os.environ.get("BENCH_PLAIN", "").split(","))
    if kind == "bare":

        async def ok(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response({"status": "ok"})

        app = web.Application()
        app.router.add_post("/webhooks/whatsapp", ok)
        await _run(app, lambda: asyncio.sleep(0))
        return
    url = POSTGRES_URL if backend == "postgres" else f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    async with scratch_store(url) as engine:
        await _serve_leadbot(engine, workdir)


async def _serve_leadbot(engine: Any, workdir: Path) -> None:
    from bot.app import create_app
    from bot.settings import Settings
    from bot.whatsapp.keys import INBOX
    from scheduler.store.models import InboxItem

    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{workdir / 'bench.db'}",
        api_token="bench-token",
        secret_key="s" * 32,
        whatsapp_app_secret=APP_SECRET,
        burst_window_ms=int(os.environ["BENCH_BURST_MS"]),
    )
    app = create_app(settings, engine=engine, run_scheduler=False, freeze=True)

    async def drained() -> None:
        started = time.perf_counter()
        await app[INBOX].settle(timeout=600)
        async with engine.connect() as connection:
            left = await connection.scalar(
                select(func.count()).select_from(InboxItem).where(InboxItem.processed_at.is_(None))
            )
        print(json.dumps({"drain_s": time.perf_counter() - started, "unprocessed": left}))
        sys.stdout.flush()

    await _run(app, drained)


async def _run(app: web.Application, on_stdin: Any) -> None:
    """Serve on a free port, print it, wait for a line on stdin (run ``on_stdin``), then
    another (stop)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"port": port}))
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    await on_stdin()
    await loop.run_in_executor(None, sys.stdin.readline)
    await runner.cleanup()


# -- load generator (parent) ---------------------------------------------------------------------


def _bodies(n: int, senders: int) -> list[tuple[bytes, str]]:
    from bot.whatsapp.signature import sign

    out = []
    run = uuid.uuid4().hex[:6]
    for i in range(n):
        wa_id = f"1415555{i % senders:04d}"
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1065"},
            "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id, "user_id": f"US.{wa_id}"}],
            "messages": [
                {
                    "from": wa_id,
                    "id": f"wamid.{run}.{i}",
                    "timestamp": "1700000000",
                    "type": "text",
                    "text": {"body": f"hi, message {i}"},
                }
            ],
        }
        body = json.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "1022", "changes": [{"field": "messages", "value": value}]}],
            }
        ).encode()
        out.append((body, sign(APP_SECRET, body)))
    return out


async def _load(
    port: int, bodies: list[tuple[bytes, str]], concurrency: int
) -> tuple[float, list[float]]:
    """Send ``bodies`` with ``concurrency`` in flight; the elapsed time and each latency."""
    latencies: list[float] = []
    queue = iter(bodies)
    url = f"http://127.0.0.1:{port}/webhooks/whatsapp"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for body, signature in queue:
                headers = {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}
                started = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


class _Server:
    """One server subprocess (``bare`` or ``leadbot``) on a free port, and what it used."""

    def __init__(
        self, kind: str, backend: str, args: argparse.Namespace, *, plain: str = ""
    ) -> None:
        self.kind = kind
        self._workdir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.bench_webhook",
                "--serve",
                kind,
                "--backend",
                backend,
                "--workdir",
                self._workdir.name,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "BENCH_BURST_MS": str(args.burst_ms), "BENCH_PLAIN": plain},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        self.port: int | None = json.loads(line)["port"] if line else None
        self.elapsed = 0.0
        self.cpu = 0.0
        self.latencies: list[float] = []

    async def load(self, bodies: list[tuple[bytes, str]], concurrency: int) -> None:
        """Send ``bodies``; add the time taken, the latencies and the server's CPU."""
        assert self.port is not None
        cpu_before = _cpu_seconds(self.proc.pid)
        elapsed, latencies = await _load(self.port, bodies, concurrency)
        self.cpu += _cpu_seconds(self.proc.pid) - cpu_before
        self.elapsed += elapsed
        self.latencies += latencies

    def result(self) -> dict[str, Any]:
        """Requests/s, p50/p99 of the 200 and server CPU a request, over every load."""
        latencies = sorted(self.latencies)
        return {
            "rps": len(latencies) / self.elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
            "cpu_us": self.cpu / len(latencies) * 1e6,
        }

    def stop(self) -> dict[str, Any]:
        """Stop the server (leadbot first drains its inbox and reports how that went)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        report: dict[str, Any] = {}
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            if self.kind == "leadbot":
                report = json.loads(self.proc.stdout.readline())
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=30)
            self._workdir.cleanup()
        return report


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _round(
    backend: str, concurrency: int, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Both servers side by side, taking turns chunk by chunk (so that a slower spell of
    the machine falls on both); their results, or None if one did not start."""
    if args.compare_plain:
        first = _Server("leadbot", backend, args, plain=f"{args.compare_plain},{args.plain}")
    else:
        first = _Server("bare", backend, args)
    servers = [first, _Server("leadbot", backend, args, plain=args.plain)]
    try:
        if any(server.port is None for server in servers):
            return None
        warmup = _bodies(args.warmup, args.senders)
        bodies = _bodies(args.messages, args.senders)
        for server in servers:
            await _load(server.port or 0, warmup, concurrency)
        size = -(-len(bodies) // args.chunks)
        for start in range(0, len(bodies), size):
            for server in servers:
                await server.load(bodies[start : start + size], concurrency)
        bare, ours = (server.result() for server in servers)
    finally:
        drained = [server.stop() for server in reversed(servers)][0]  # leadbot's first
    return bare, {**ours, **drained}


async def main(args: argparse.Namespace) -> None:
    """Measure each backend ``--rounds`` times; print the medians."""
    print(
        f"{args.messages} signed webhook bodies (1 message each) from {args.senders} senders, "
        f"after {args.warmup} warm-up requests; burst window {args.burst_ms} ms"
        f"{' (turns held: ingest alone)' if args.burst_ms >= 10000 else ''}; "
        f"median of {args.rounds} rounds; load {loadavg()}"
    )
    if args.compare_plain:
        print(
            f"plain: leadbot without the fast paths {args.compare_plain}; fast: leadbot"
            f"{f' (both without {args.plain})' if args.plain else ''}"
        )
    header = (
        f"{'backend':9} {'conc':>4} {'server':8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'µs CPU':>8}  notes"
    )
    print(header)
    print("-" * len(header))
    for backend in args.backends:
        if backend == "postgres" and not await postgres_reachable():
            print(f"{backend:9} skipped: {POSTGRES_URL} not reachable")
            continue
        for concurrency in args.concurrency:
            if not await _compare(backend, concurrency, args):
                print(f"{backend:9} failed to start a server")
                return
    print(f"load {loadavg()}")


async def _compare(backend: str, concurrency: int, args: argparse.Namespace) -> bool:
    """``--rounds`` rounds of bare and leadbot side by side (:func:`_round`); print the medians."""
    rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for _ in range(args.rounds):
        result = await _round(backend, concurrency, args)
        if result is None:
            return False
        rounds.append(result)
    ratios = sorted(o["rps"] / b["rps"] for b, o in rounds)
    ratio = statistics.median(ratios)
    drained = statistics.median(o["drain_s"] for _, o in rounds)
    left = max(o["unprocessed"] for _, o in rounds)
    names = ("plain", "fast") if args.compare_plain else ("bare", "leadbot")
    summary = (
        f"{ratio:.2f} of {names[0]} (rounds {', '.join(f'{r:.2f}' for r in ratios)}); "
        f"inbox drained {drained:.1f}s after the last 200, {left} left"
    )
    for index, name in enumerate(names):
        runs = [r[index] for r in rounds]
        row = " ".join(
            f"{statistics.median(r[k] for r in runs):8.{p}f}"
            for k, p in (("rps", 0), ("p50_ms", 2), ("p99_ms", 2), ("cpu_us", 0))
        )
        print(f"{backend:9} {concurrency:4} {name:8} {row}  {summary if index else ''}")
    return True


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--senders", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=8, help="turns each server takes a round")
    parser.add_argument("--burst-ms", type=int, default=10000, help="LEADBOT_BURST_WINDOW_MS")
    parser.add_argument(
        "--compare-plain",
        default="",
        metavar="PATHS",
        help="fast paths to switch off in the server compared (inbox,sqlite)",
    )
    parser.add_argument("--plain", default="", metavar="PATHS", help="... in both servers")
    parser.add_argument("--serve", choices=["bare", "leadbot"], help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="sqlite", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _parse()
    if arguments.serve:
        asyncio.run(_serve(arguments.serve, arguments.backend, Path(arguments.workdir)))
    else:
        asyncio.run(main(arguments))
