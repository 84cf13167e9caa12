"""Reply latency: from the webhook POST to the reply arriving at the (fake) Cloud API.

    .venv/bin/python -m bench.bench_reply_latency                   # 100 conv/s for 10 s
    .venv/bin/python -m bench.bench_reply_latency --rate 200 --seconds 5 --database postgresql+asyncpg://…

The service runs in this process on 127.0.0.1 with the rules interpreter, the embedded
SQLite store (or ``--database``) and the WhatsApp channel pointed at the fake Graph API of
``tests/fakes/graph_api.py``. New conversations start at ``--rate`` per second (each a
signed "Hi" from a new number); a conversation's latency is the time from starting its POST
to its reply reaching the fake. Prints p50/p90/p99/max; the target is p99 <= 1 s at 100/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.stores import scratch_store
from bot.app import create_app
from bot.settings import Settings
from bot.whatsapp.signature import HEADER, sign
from tests.fakes.graph_api import FakeGraphAPI

SECRET = "bench-app-secret"


def body(wa_id: str, n: int) -> bytes:
    """A Cloud API webhook body with one text message from ``wa_id``."""
    message = {"from": wa_id, "id": f"wamid.BENCH{n}", "timestamp": str(int(time.time())),
               "type": "text", "text": {"body": "Hi, I saw your ad"}}  # fmt: skip
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id, "user_id": f"US.{wa_id}"}],
        "messages": [message],
    }
    entry = {"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}
    return json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()


async def run(rate: float, seconds: float, database: str | None, burst_ms: int) -> None:
    """Drive the service and print the latency figures."""
    workdir = Path(tempfile.mkdtemp(prefix="leadbot-bench-"))
    url = database or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    async with scratch_store(url, pool_size=10, max_overflow=10) as engine:
        await _drive(engine, url, rate, seconds, burst_ms)


async def _drive(
    engine: AsyncEngine, url: str, rate: float, seconds: float, burst_ms: int
) -> None:
    async with FakeGraphAPI() as graph:
        settings = Settings(_env_file=None, database_url=url, api_token="t",
                            secret_key="s" * 32, whatsapp_app_secret=SECRET,
                            whatsapp_phone_id=graph.phone_id, whatsapp_token=graph.token,
                            whatsapp_api_url=graph.base_url,
                            calendly_url="https://calendly.com/acme/intro",
                            burst_window_ms=burst_ms)  # fmt: skip
        runner = web.AppRunner(create_app(settings, engine=engine, run_scheduler=False),
                               access_log=None)  # fmt: skip
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        total = int(rate * seconds)
        started: dict[str, float] = {}
        async with aiohttp.ClientSession() as http:

            async def converse(n: int) -> None:
                wa_id = f"1415{n:07d}"
                raw = body(wa_id, n)
                started[wa_id] = time.perf_counter()
                headers = {HEADER: sign(SECRET, raw), "Content-Type": "application/json"}
                async with http.post(f"http://127.0.0.1:{port}/webhooks/whatsapp", data=raw,
                                     headers=headers) as response:  # fmt: skip
                    assert response.status == 200, await response.text()

            tasks = []
            t0 = time.perf_counter()
            for n in range(total):
                delay = t0 + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the load generator, not a race
                tasks.append(asyncio.create_task(converse(n)))
            await asyncio.gather(*tasks)
            await graph.wait_for(total, timeout=120)
        await runner.cleanup()
    latencies = sorted(
        (r.at - started[r.body["to"]]) * 1000 for r in graph.requests if r.body.get("to")
    )
    q = statistics.quantiles(latencies, n=100)
    print(f"{total} conversations at {rate:g}/s on {url.split(':', maxsplit=1)[0]}: reply latency "
          f"p50 {q[49]:.0f} ms  p90 {q[89]:.0f} ms  p99 {q[98]:.0f} ms  max {latencies[-1]:.0f} ms"
          f"  (target p99 <= 1000 ms)")  # fmt: skip


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="new conversations per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database", default=None, help="a database URL instead of SQLite")
    parser.add_argument("--burst-ms", type=int, default=400, help="LEADBOT_BURST_WINDOW_MS")
    args = parser.parse_args()
    asyncio.run(run(args.rate, args.seconds, args.database, args.burst_ms))


if __name__ == "__main__":
    main()
