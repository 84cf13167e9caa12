"""The events channel's outcomes, as the outbox reads them: every failure is a transient
NotSent (retried; a timeout too, since receivers dedupe on webhook-id), except a row the
channel cannot send at all; Retry-After is honoured up to an hour; redirects not followed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from crm_sync.events_channel import MAX_RETRY_AFTER, EventsChannel
from crm_sync.signing import new_secret
from scheduler.delivery.channels import NotSent, Receipt
from scheduler.pipeline.outbound_events import Endpoint

EVENT: dict[str, Any] = {
    "id": "evt_1",
    "type": "lead.created",
    "occurred_at": "x",
    "lead": None,
    "data": {},
}


@pytest.fixture
async def server() -> AsyncIterator[str]:
    async def ok(_: web.Request) -> web.Response:
        return web.json_response({})

    async def busy(_: web.Request) -> web.Response:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "99999999"})

    async def moved(_: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    app = web.Application()
    for path, handler in [("/ok", ok), ("/busy", busy), ("/moved", moved), ("/hang", hang)]:
        app.router.add_post(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def send(base: str, path: str, payload: dict[str, Any] | None = None) -> Receipt:
    endpoint = Endpoint("hook", base + path, new_secret())
    channel = EventsChannel([endpoint], timeout=0.3)
    try:
        return await channel.send(endpoint.url, payload or {"endpoint": "hook", "event": EVENT})
    finally:
        await channel.aclose()


async def test_a_2xx_is_delivered(server: str) -> None:
    assert await send(server, "/ok") == Receipt("hook:evt_1")


@pytest.mark.parametrize(
    ("path", "status"), [("/busy", "429"), ("/moved", "302"), ("/hang", "network")]
)
async def test_failures_are_retried(server: str, path: str, status: str) -> None:
    with pytest.raises(NotSent) as caught:
        await send(server, path)
    assert caught.value.is_transient and caught.value.code == status
    if path == "/busy":
        assert caught.value.retry_after == MAX_RETRY_AFTER
        assert "HTTP 429: slow down" in str(caught.value)


async def test_rows_it_cannot_send_fail_at_once(server: str) -> None:
    for payload in ({"endpoint": "gone", "event": EVENT}, {"endpoint": "hook"}):
        with pytest.raises(NotSent) as caught:
            await send(server, "/ok", payload)
        assert not caught.value.is_transient
