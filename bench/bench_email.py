"""Email out and in: send rate through the outbox to a local SMTP server, quote stripping.

    .venv/bin/python -m bench.bench_email              # 500 emails, SQLite
    .venv/bin/python -m bench.bench_email --emails 2000

Sending: N leads, N outbox rows, delivered by the real Dispatcher and EmailChannel
(suppression, cap and throttle checks, composition, pooled SMTP connections kept open
between emails as ``LEADBOT_SMTP_KEEPALIVE`` does) to aiosmtpd on 127.0.0.1, which accepts
and discards. Twice: one ``deliver`` at a time (a webhook's single reply; prints the
per-email latency percentiles), then ``deliver_many`` in batches of 100 (the outbox job and
the sweeper). Stripping: the Gmail/Outlook/Apple fixtures, per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.email import EmailChannel
from bot.channels.email_message import EmailSender
from bot.channels.smtp import SmtpConfig
from bot.email.quotes import strip_quotes
from bot.http.signing import Signer
from scheduler.delivery.outbox import Dispatcher, enqueue
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.migrate import upgrade
from scheduler.store.models import utcnow

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "email"


class _Sink:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 OK"


async def _rows(sessions: async_sessionmaker[AsyncSession], count: int, tag: str) -> list[int]:
    now = utcnow()
    ids = []
    async with sessions.begin() as session:
        for n in range(count):
            lead = (
                await intake(
                    session, LeadIn(email=f"{tag}{n}@d{n % 50}.com"), default_region="US", now=now
                )
            ).lead
            item = await enqueue(
                session,
                key=f"bench:{tag}:{n}",
                channel="email",
                recipient=lead.email or "",
                payload={
                    "subject": "Hello",
                    "text": "Hi,\nshall we talk?\n" * 5,
                    "html": "<p>Hi, shall we talk?</p>",
                    "lead_token": lead.token,
                },
                now=now,
                lead_id=lead.id,
            )
            assert item is not None
            ids.append(item)
    return ids


async def bench_send(count: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(_Sink(), hostname="sink.local"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite+aiosqlite:///{tmp}/bench.db")
        await upgrade(engine)
        sessions = session_factory(engine)
        one_by_one = await _rows(sessions, count, "p")
        batched = await _rows(sessions, count, "q")
        channel = EmailChannel(
            SmtpConfig.from_url(f"smtp://127.0.0.1:{port}"),
            sessions,
            sender=EmailSender.parse("Sales <sales@bench.example.com>"),
            signer=Signer("k" * 32),
            public_url="https://bench.example.com",
            daily_cap=10**9,
            domain_per_minute=10**9,
            keepalive=10.0,
        )
        dispatcher = Dispatcher(sessions, {"email": channel})
        latencies = []
        started = time.perf_counter()
        for item in one_by_one:
            t0 = time.perf_counter()
            state = await dispatcher.deliver(item, utcnow())
            latencies.append(time.perf_counter() - t0)
            assert state == "sent", state
        elapsed = time.perf_counter() - started
        started = time.perf_counter()
        for first in range(0, count, 100):
            states = await dispatcher.deliver_many(batched[first : first + 100], utcnow())
            assert set(states.values()) == {"sent"}, states
        batch_elapsed = time.perf_counter() - started
        connects = channel.pool.connects
        await channel.aclose()
        await engine.dispose()
    server.close()
    await server.wait_closed()
    q = statistics.quantiles(latencies, n=100)
    print(
        f"send one by one (SQLite, local SMTP): {count} emails in {elapsed:.2f}s = "
        f"{count / elapsed:.0f}/s; per email p50 {q[49] * 1000:.1f} ms, "
        f"p95 {q[94] * 1000:.1f} ms"
    )
    print(
        f"send in batches of 100 (deliver_many): {count} emails in {batch_elapsed:.2f}s = "
        f"{count / batch_elapsed:.0f}/s; {connects} SMTP connections opened in all"
    )


def bench_strip(rounds: int) -> None:
    bodies = [
        json.loads((FIXTURES / name).read_text("utf-8"))["body-plain"]
        for name in ("gmail_reply.json", "outlook_reply.json", "apple_mail_reply.json")
    ]
    started = time.perf_counter()
    for _ in range(rounds):
        for body in bodies:
            strip_quotes(body)
    elapsed = time.perf_counter() - started
    print(f"strip_quotes: {rounds * len(bodies) / elapsed:,.0f} replies/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(bench_send(args.emails))
    bench_strip(20_000)


if __name__ == "__main__":
    main()
