"""Reply latency: from the webhook POST to the reply arriving at the (fake) Cloud API.

    .venv/bin/python -m bench.bench_reply_latency             # 100 conv/s for 10 s, both stores
    .venv/bin/python -m bench.bench_reply_latency --rate 200 --seconds 5 --backends sqlite

The service runs in its own process (as ``leadbot serve`` would) on 127.0.0.1 with the
rules interpreter, a scratch store (an SQLite file, or Postgres in a schema of its own) and
the WhatsApp channel pointed at the fake Graph API of ``tests/support/fakes/graph_api.py``, which
runs here with the load generator, so the two do not compete with the service for a CPU.
New conversations start at ``--rate`` per second (each a signed "Hi" from a new number); a
conversation's latency is the time from starting its POST to its reply reaching the fake,
so it includes the burst window (``--burst-ms``, the service's default 400 ms) during which
the service waits for a second message before answering. Prints p50/p90/p99/max and how
busy the service's process was (CPU time / wall time: near 100 % it has no headroom left,
and its group commits grow to keep up); the target is p99 <= 1 s at 100/s.

The channel's send rate is ``--wa-rate`` (1000/s: the Cloud API's upgraded tier). At the
default tier of 80 messages/s a number cannot answer 100 new conversations a second at all;
the service queues the excess, as it must.

``--compare-plain graph,sqlite`` runs the service ``--rounds`` times with those fast paths
switched off (:func:`bench.bench_fast_paths.force_plain`) and as many times with them on,
alternating, and prints the medians of both (``bench/README.md``); ``--plain`` switches fast
paths off in both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.bench_fast_paths import loadavg
from bot.whatsapp.signature import HEADER, sign
from tests.support.fakes.graph_api import FakeGraphAPI
from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store

SECRET = "bench-app-secret"


def body(wa_id: str, n: int) -> bytes:
    """A Cloud API webhook body with one text message from ``wa_id``."""
    message = {
        "from": wa_id,
        "id": f"wamid.BENCH{n}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": "Hi, I saw your ad"},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id, "user_id": f"US.{wa_id}"}],
        "messages": [message],
    }
    entry = {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


# -- the service (child process) -----------------------------------------------------------------


async def serve(config: dict[str, Any]) -> None:
    """Run the service on a scratch store until a line arrives on stdin."""
    from bench.bench_fast_paths import force_plain
    from bot.app import create_app
    from bot.settings import Settings

    force_plain(config["plain"].split(","))
    async with scratch_store(config["database"]) as engine:
        settings = Settings(
            _env_file=None,
            database_url=config["database"],
            api_token="t",
            secret_key="s" * 32,
            whatsapp_app_secret=SECRET,
            whatsapp_phone_id=config["phone_id"],
            whatsapp_token=config["token"],
            whatsapp_api_url=config["graph_url"],
            whatsapp_rate=config["wa_rate"],
            calendly_url="https://calendly.com/acme/intro",
            burst_window_ms=config["burst_ms"],
        )
        app = create_app(settings, engine=engine, run_scheduler=False, freeze=True)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await runner.cleanup()


# -- the load generator (parent) -----------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(database: str, args: argparse.Namespace, plain: str = "") -> dict[str, float]:
    """One run against a service on ``database`` (without the fast paths ``plain``): the
    latency quantiles (ms) and how busy the service was (share of a core)."""
    async with FakeGraphAPI() as graph:
        config = {
            "database": database,
            "graph_url": graph.base_url,
            "phone_id": graph.phone_id,
            "token": graph.token,
            "wa_rate": args.wa_rate,
            "burst_ms": args.burst_ms,
            "plain": plain,
        }
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.bench_reply_latency", "--serve", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
            port = json.loads(line)["port"]
            cpu_before, wall_before = _cpu_seconds(child.pid), time.perf_counter()
            total = int(args.rate * args.seconds)
            started = await _converse(port, total, args.rate)
            await graph.wait_for(total, timeout=300)
            busy = (_cpu_seconds(child.pid) - cpu_before) / (time.perf_counter() - wall_before)
        finally:
            child.stdin.write("\n")
            child.stdin.flush()
            await asyncio.get_running_loop().run_in_executor(None, child.wait)
    latencies = sorted(
        (r.at - started[r.body["to"]]) * 1000 for r in graph.requests if r.body.get("to")
    )
    q = statistics.quantiles(latencies, n=100)
    return {"p50": q[49], "p90": q[89], "p99": q[98], "max": latencies[-1], "busy": busy}


def line(name: str, figures: dict[str, float]) -> str:
    """One printed line of :func:`measure`'s figures."""
    return (
        f"{name:20} p50 {figures['p50']:5.0f} ms  p90 {figures['p90']:5.0f} ms  "
        f"p99 {figures['p99']:5.0f} ms  max {figures['max']:5.0f} ms  "
        f"service busy {figures['busy']:.0%} of a core"
    )


async def _converse(port: int, total: int, rate: float) -> dict[str, float]:
    """Start ``total`` conversations at ``rate`` per second; when each POST started."""
    started: dict[str, float] = {}
    url = f"http://127.0.0.1:{port}/webhooks/whatsapp"
    async with aiohttp.ClientSession() as http:

        async def one(n: int) -> None:
            wa_id = f"1415{n:07d}"
            raw = body(wa_id, n)
            started[wa_id] = time.perf_counter()
            headers = {HEADER: sign(SECRET, raw), "Content-Type": "application/json"}
            async with http.post(url, data=raw, headers=headers) as response:
                assert response.status == 200, await response.text()

        tasks = []
        t0 = time.perf_counter()
        for n in range(total):
            delay = t0 + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing the load generator, not a race
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return started


async def main(args: argparse.Namespace) -> None:
    """Measure on each backend and print a line each."""
    total = int(args.rate * args.seconds)
    print(
        f"{total} new conversations at {args.rate:g}/s, burst window {args.burst_ms} ms, "
        f"WhatsApp rate {args.wa_rate:g}/s; target p99 <= 1000 ms"
    )
    print(f"load {loadavg()}")
    for backend in args.backends:
        if backend == "postgres" and not await postgres_reachable():
            print(f"postgres skipped: {POSTGRES_URL} not reachable")
            continue
        if not args.compare_plain:
            print(line(backend, await _measure_on(backend, args, "")))
            continue
        runs: dict[str, list[dict[str, float]]] = {"plain": [], "fast": []}
        for r in range(args.rounds):
            for name in ("plain", "fast") if r % 2 == 0 else ("fast", "plain"):
                plain = f"{args.compare_plain},{args.plain}" if name == "plain" else args.plain
                runs[name].append(await _measure_on(backend, args, plain))
        for name, figures in runs.items():
            medians = {k: statistics.median(f[k] for f in figures) for k in figures[0]}
            busy = ", ".join(f"{f['busy']:.0%}" for f in figures)
            print(f"{line(f'{backend} {name}', medians)} (rounds {busy})")
    print(f"load {loadavg()}")


async def _measure_on(backend: str, args: argparse.Namespace, plain: str) -> dict[str, float]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as workdir:
            return await measure(f"sqlite+aiosqlite:///{workdir}/bench.db", args, plain)
    return await measure(POSTGRES_URL, args, plain)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="new conversations per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--burst-ms", type=int, default=400, help="LEADBOT_BURST_WINDOW_MS")
    parser.add_argument("--wa-rate", type=float, default=1000.0, help="LEADBOT_WHATSAPP_RATE")
    parser.add_argument(
        "--compare-plain",
        default="",
        metavar="PATHS",
        help="fast paths to switch off in the runs compared (graph,sqlite)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --compare-plain")
    parser.add_argument("--plain", default="", metavar="PATHS", help="... in both (compared) runs")
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _parse()
    if arguments.serve:
        asyncio.run(serve(json.loads(arguments.serve)))
    else:
        asyncio.run(main(arguments))
