"""A crash after the 200 loses nothing and sends exactly one reply; failures are retried
with a cap and recorded on the inbox row."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.whatsapp.envelope import parse_envelope
from bot.whatsapp.ingest import ingest
from bot.whatsapp.keys import INBOX
from bot.whatsapp.signature import HEADER, sign
from scheduler.store.engine import create_engine, session_factory
from scheduler.store.models import InboxItem, OutboxItem, utcnow
from tests.bot.support import make_settings
from tests.bot.whatsapp.conftest import (
    APP_SECRET,
    Client,
    MakeClient,
    inbox_rows,
    post,
    replies,
    settle,
    text_body,
)

PHONE = "14155550180"


async def test_rows_stored_before_a_crash_are_answered_once_on_startup(
    engine: AsyncEngine, aiohttp_client: Any
) -> None:
    # The webhook stored these and answered 200; then the process died.
    for i, text in enumerate(["hi", "we need an app"]):
        await ingest(engine, parse_envelope(text_body(PHONE, f"wamid.CRASH{i}", text)), utcnow())
    client: Client = await aiohttp_client(
        create_app(make_settings(burst_window_ms=20), engine=engine, run_scheduler=False)
    )
    await client.app[INBOX].settle(timeout=20)
    sent = await replies(client, f"+{PHONE}")
    assert len(sent) == 1 and sent[0]["_key"] == "wa:wamid.CRASH0:0"
    assert all(r.processed_at is not None for r in await inbox_rows(client))


async def test_shutdown_during_the_burst_window_defers_to_the_next_start(
    engine: AsyncEngine, aiohttp_client: Any
) -> None:
    settings = make_settings(whatsapp_app_secret=APP_SECRET, burst_window_ms=10_000)
    first: Client = await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))
    assert (await post(first, text_body(PHONE, "wamid.LATE", "hi"))).status == 200
    await first.close()  # the turn was still waiting: nothing was sent
    second: Client = await aiohttp_client(
        create_app(make_settings(burst_window_ms=20), engine=engine, run_scheduler=False)
    )
    await second.app[INBOX].settle(timeout=20)
    assert len(await replies(second, f"+{PHONE}")) == 1


class _Broken:
    async def interpret(self, *args: Any) -> Any:
        raise RuntimeError("interpreter exploded")


async def test_a_failing_turn_is_recorded_retried_and_given_up(make_client: MakeClient) -> None:
    client, _ = await make_client(inbox_max_attempts=2)
    processor = client.app[INBOX]
    working = processor.dialogs
    processor.dialogs = dataclasses.replace(working, interpreter=_Broken())
    assert (await post(client, text_body(PHONE, "wamid.FAIL", "hello"))).status == 200
    await settle(client)
    (row,) = await inbox_rows(client)
    assert (row.attempts, row.processed_at) == (1, None)
    assert row.error is not None and "interpreter exploded" in row.error
    assert await processor.sweep(utcnow() + timedelta(minutes=1)) == 1
    await settle(client)
    (row,) = await inbox_rows(client)
    assert row.attempts == 2 and row.processed_at is not None
    assert row.error is not None and row.error.endswith("(gave up)")
    assert await replies(client, f"+{PHONE}") == []
    assert processor.stats.given_up == 1


async def test_a_retry_after_a_transient_failure_replies_once(make_client: MakeClient) -> None:
    client, _ = await make_client()
    processor = client.app[INBOX]
    working = processor.dialogs
    processor.dialogs = dataclasses.replace(working, interpreter=_Broken())
    assert (await post(client, text_body(PHONE, "wamid.FLAKY", "hello"))).status == 200
    await settle(client)
    processor.dialogs = working
    await processor.sweep(utcnow() + timedelta(minutes=1))
    await settle(client)
    assert len(await replies(client, f"+{PHONE}")) == 1
    (row,) = await inbox_rows(client)
    assert row.processed_at is not None and row.error is None


# -- the real thing: SIGKILL a `leadbot serve` between the 200 and the reply -------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(tmp_path: Path) -> Any:
    """Start `leadbot serve` subprocesses on one SQLite file; killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    db = tmp_path / "leadbot.db"
    leadbot = Path(sys.executable).with_name("leadbot")

    def start(port: int, burst_ms: int) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADBOT_", "OPENAI_"))}
        env.update(
            LEADBOT_DATABASE_URL=f"sqlite+aiosqlite:///{db}",
            LEADBOT_PORT=str(port),
            LEADBOT_API_TOKEN="t" * 20,
            LEADBOT_SECRET_KEY="s" * 32,
            LEADBOT_WHATSAPP_APP_SECRET=APP_SECRET,
            LEADBOT_BURST_WINDOW_MS=str(burst_ms),
        )
        proc = subprocess.Popen(
            [str(leadbot), "serve"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(proc)
        return proc

    yield start, db
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _wait_healthy(http: aiohttp.ClientSession, base: str) -> None:
    async with asyncio.timeout(30):
        while True:
            try:
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.05)  # polling a process we cannot signal


async def _count(engine: AsyncEngine, query: Any) -> int:
    async with session_factory(engine)() as db:
        return int(await db.scalar(query) or 0)


async def _wait_for(engine: AsyncEngine, query: Any, value: int) -> None:
    async with asyncio.timeout(30):
        while await _count(engine, query) != value:
            await asyncio.sleep(0.05)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.timeout(120)
async def test_sigkill_between_the_200_and_the_reply(
    serve: Any, http: aiohttp.ClientSession
) -> None:
    start, db = serve
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    first = start(port, burst_ms=10_000)  # the reply would wait 10 s: we kill it before
    await _wait_healthy(http, base)
    body = text_body(PHONE, "wamid.KILL", "hi, we need a website")
    headers = {HEADER: sign(APP_SECRET, body), "Content-Type": "application/json"}
    async with http.post(f"{base}/webhooks/whatsapp", data=body, headers=headers) as response:
        assert response.status == 200
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        unprocessed = (
            select(func.count()).select_from(InboxItem).where(InboxItem.processed_at.is_(None))
        )
        replies_q = select(func.count()).select_from(OutboxItem)
        assert await _count(engine, unprocessed) == 1
        assert await _count(engine, replies_q) == 0
        start(port, burst_ms=20)
        await _wait_healthy(http, base)
        await _wait_for(engine, unprocessed, 0)
        # Meta may deliver the same body again (at least once): it changes nothing.
        async with http.post(f"{base}/webhooks/whatsapp", data=body, headers=headers) as again:
            assert again.status == 200
        all_rows = select(func.count()).select_from(InboxItem)
        assert await _count(engine, all_rows) == 1  # the retry was stored as nothing new
        await _wait_for(engine, replies_q, 1)
        sent = select(func.count()).select_from(OutboxItem).where(OutboxItem.state == "sent")
        await _wait_for(engine, sent, 1)
        assert await _count(engine, replies_q) == 1
    finally:
        await engine.dispose()
