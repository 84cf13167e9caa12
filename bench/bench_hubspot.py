"""HubSpot sync throughput against the fake HubSpot at its rate limit.

    .venv/bin/python -m bench.bench_hubspot                      # 5,000 leads, 100 per 10 s
    .venv/bin/python -m bench.bench_hubspot --leads 500 --page 1 # one lead a batch

N leads, each with a qualification (one note), are backfilled exactly as
``leadbot crm backfill`` does (pages of sync rows, delivered by the real Dispatcher and
HubSpotChannel) to the fake HubSpot (``tests/support/fakes/hubspot.py``) on 127.0.0.1, which
enforces HubSpot's rolling 10-second window (Free/Starter: 100 requests) and answers 429
past it. Prints leads/s, requests/s against the limit, 429s, and checks that every lead
became exactly one contact, one deal and one note.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter

from crm_sync.hubspot import backfill
from crm_sync.hubspot.channel import CHANNEL, HubSpotChannel
from crm_sync.hubspot.client import HubSpotClient
from crm_sync.hubspot.rate_limit import RateLimiter
from crm_sync.hubspot.stage_map import parse_stage_map
from scheduler.delivery.outbox import Dispatcher
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.leads import store_qualification
from scheduler.store.migrate import upgrade
from scheduler.store.models import utcnow
from tests.support.fakes.hubspot import FakeHubSpot, running

QUALIFICATION = {
    "decision": "qualified",
    "tier": "warm",
    "fit_score": 70,
    "intent_score": 60,
    "reasons": ["in the ICP"],
    "slots": {"team_size": {"value": "51-200", "evidence": "about 200 of us"}},
}


async def run(leads: int, page: int, per_interval: int, interval_ms: int) -> dict[str, object]:
    """One backfill of ``leads`` leads; the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(engine)
        sessions = session_factory(engine)
        now = utcnow()
        for first in range(0, leads, 500):
            async with sessions.begin() as session:
                for n in range(first, min(leads, first + 500)):
                    data = LeadIn(name=f"Lead {n}", email=f"l{n}@c{n % 97}.com", company="Acme")
                    lead = (await intake(session, data, default_region="US", now=now)).lead
                    await store_qualification(
                        session, lead.id, qualification=dict(QUALIFICATION), enrichment={}, now=now
                    )
        fake = FakeHubSpot(per_interval=per_interval, interval_ms=interval_ms)
        async with running(fake):
            # The limiter starts at the configured rate and learns HubSpot's from headers.
            limiter = RateLimiter(per_interval=per_interval, interval=interval_ms / 1000)
            client = HubSpotClient(fake.token, api_url=fake.base_url, limiter=limiter)
            channel = HubSpotChannel(
                client, sessions, stages=parse_stage_map(""), pipeline="default"
            )
            sender = Dispatcher(sessions, {CHANNEL: channel})
            started = time.perf_counter()
            try:
                async for ids in backfill.pages(sessions, "bench", now, page=page):
                    await sender.deliver_many(ids, utcnow())
                # Rows held back (a full window) or retried come due again: deliver them.
                deadline = time.perf_counter() + 1800
                while not _whole(fake, leads) and time.perf_counter() < deadline:
                    if not await sender.deliver_due(utcnow(), limit=page):
                        await asyncio.sleep(0.2)
            finally:
                elapsed = time.perf_counter() - started
                await sender.close()
                await channel.aclose()
        await engine.dispose()
    requests = len(fake.requests)
    whole = _whole(fake, leads)
    return {
        "leads": leads,
        "page": page,
        "limit": f"{per_interval} per {interval_ms / 1000:g} s",
        "seconds": round(elapsed, 2),
        "leads_per_s": round(leads / elapsed, 1),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 2),
        "limit_per_s": round(per_interval / (interval_ms / 1000), 2),
        "answered_429": fake.statuses(429),
        "requests_by_path": dict(
            Counter(
                path.rsplit("/", 2)[-2] + "/" + path.rsplit("/", 1)[-1]
                for _, path, _ in fake.requests
            )
        ),
        "one_contact_deal_note_each": whole,
    }


def _whole(fake: FakeHubSpot, leads: int) -> bool:
    return all(len(fake.objects[t]) == leads for t in ("contacts", "deals", "notes"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--leads", type=int, default=5000)
    parser.add_argument("--page", type=int, default=100, help="leads per batch (≤ 100)")
    parser.add_argument("--rate", type=int, default=100, help="requests per window")
    parser.add_argument("--interval-ms", type=int, default=10_000)
    args = parser.parse_args()
    figures = asyncio.run(run(args.leads, args.page, args.rate, args.interval_ms))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
