"""Lead intake throughput: the HTTP API and CSV import, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bench_intake            # everything, both backends
    .venv/bin/python -m bench.bench_intake --rows 100000 --backends sqlite

Each measurement runs in a fresh subprocess against a fresh database, so the peak RSS it
reports is that run's own; CSV import is measured at two file sizes to show whether memory
grows with the file. Postgres is skipped with a note when it is not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import create_app
from bot.settings import Settings
from scheduler.intake.importer import import_csv
from scheduler.store.engine import session_factory
from scheduler.store.models import utcnow
from tests.support.lead_csv import write_leads_csv
from tests.support.stores import POSTGRES_URL, postgres_reachable, scratch_store


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _url(backend: str, workdir: Path) -> str:
    return POSTGRES_URL if backend == "postgres" else f"sqlite+aiosqlite:///{workdir / 'bench.db'}"


async def measure_import(backend: str, rows: int) -> dict[str, Any]:
    """Import a generated CSV of ``rows`` rows (1% bad) into an empty database."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        path = workdir / "leads.csv"
        expected = write_leads_csv(path, rows, bad_share=0.01)
        file_mb = round(path.stat().st_size / 1e6, 1)
        async with scratch_store(_url(backend, workdir)) as engine:
            rss_before = _peak_rss_mb()
            started = time.perf_counter()
            report = await import_csv(
                session_factory(engine), path, default_region="US", now=utcnow()
            )
            elapsed = time.perf_counter() - started
    correct = (report.created, report.rejected) == (expected.created, expected.rejected)
    return {
        "what": "csv import",
        "backend": backend,
        "rows": rows,
        "file_mb": file_mb,
        "seconds": round(elapsed, 2),
        "leads_per_s": round(report.created / elapsed),
        "report_correct": correct,
        "peak_rss_mb_before": round(rss_before, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


async def measure_api(backend: str, leads: int, concurrency: int) -> dict[str, Any]:
    """POST ``leads`` distinct leads to /api/leads with ``concurrency`` clients in flight."""
    with tempfile.TemporaryDirectory() as tmp:
        async with scratch_store(_url(backend, Path(tmp))) as engine:
            # Intake alone: the email first touch (enrich, qualify, draft, send) is its own flow.
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None, api_token="bench", secret_key="k", first_touch=False
            )
            runner = web.AppRunner(create_app(settings, engine=engine), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            queue: asyncio.Queue[int] = asyncio.Queue()
            for index in range(leads):
                queue.put_nowait(index)
            statuses: dict[int, int] = {}

            async def client(session: aiohttp.ClientSession) -> None:
                while not queue.empty():
                    index = queue.get_nowait()
                    body = {"email": f"lead{index}@bench.example", "name": f"Lead {index}"}
                    async with session.post(
                        f"http://127.0.0.1:{port}/api/leads",
                        json=body,
                        headers={"Authorization": "Bearer bench"},
                    ) as response:
                        statuses[response.status] = statuses.get(response.status, 0) + 1

            started = time.perf_counter()
            async with aiohttp.ClientSession() as session:
                await asyncio.gather(*(client(session) for _ in range(concurrency)))
            elapsed = time.perf_counter() - started
            await runner.cleanup()
    return {
        "what": "api intake",
        "backend": backend,
        "leads": leads,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "leads_per_s": round(leads / elapsed),
        "statuses": statuses,
    }


def _run_child(args: list[str]) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_intake", "--child", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="CSV rows (large run)")
    parser.add_argument("--api-leads", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        kind, backend, size, *rest = args.child
        if kind == "import":
            result = asyncio.run(measure_import(backend, int(size)))
        else:
            result = asyncio.run(measure_api(backend, int(size), int(rest[0])))
        print(json.dumps(result))
        return
    backends = args.backends.split(",")
    if "postgres" in backends and not asyncio.run(postgres_reachable()):
        print(f"postgres: not reachable at {POSTGRES_URL}, skipped")
        backends.remove("postgres")
    for backend in backends:
        for rows in (args.rows // 5, args.rows):
            print(json.dumps(_run_child(["import", backend, str(rows)])))
        print(json.dumps(_run_child(["api", backend, str(args.api_leads), str(args.concurrency)])))


if __name__ == "__main__":
    main()
