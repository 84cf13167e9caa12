"""The Graph API client's fast path (pywa's calls on aiohttp) and its fallback (httpx's own
transport) send the same requests and give the channel the same outcomes; the fallback is
taken, with a warning, when httpx or aiohttp is not as expected."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx
import pytest

from bot.channels import graph_http
from bot.channels.graph_http import GraphHttpClient, graph_client
from bot.channels.throttle import Pause
from bot.channels.whatsapp import WhatsAppChannel
from scheduler.delivery.channels import DeliveryError, MaybeSent, NotSent
from tests.support.fakes.graph_api import FakeGraphAPI, Reply

TO = "+14155550123"
PAYLOADS: list[dict[str, Any]] = [
    {"kind": "text", "text": "Hi Dana! What are you building? ünïcode 👋"},
    {
        "kind": "buttons",
        "text": "How big is your team?",
        "buttons": [{"id": "size:small", "title": "1-10"}, {"id": "size:big", "title": "11+"}],
    },
    {
        "kind": "list",
        "text": "When?",
        "button": "Pick one",
        "rows": [{"id": "t:now", "title": "This month", "description": "asap"}],
    },
    {"kind": "cta_url", "text": "Book a call", "title": "Book", "url": "https://cal.example/x"},
    {
        "kind": "template",
        "text": "Still there?",
        "template": "lead_followup",
        "language": "en_US",
        "params": ["Dana"],
    },
]
# Headers that reach Meta (transport headers like Host, Content-Length or Accept-Encoding
# are each library's own business).
COMPARED_HEADERS = ("Authorization", "Content-Type", "User-Agent")


@pytest.fixture(autouse=True)
def _fresh_check() -> Iterator[None]:
    graph_http.available.cache_clear()
    yield
    graph_http.available.cache_clear()


def _channel(
    graph: FakeGraphAPI, *, fast: bool, monkeypatch: pytest.MonkeyPatch, **options: Any
) -> WhatsAppChannel:
    with monkeypatch.context() as patch:
        patch.setattr(graph_http, "available", lambda: fast)
        channel = WhatsAppChannel(
            phone_id=graph.phone_id, token=graph.token, api_url=graph.base_url, **options
        )
    assert isinstance(channel._http, GraphHttpClient) is fast
    return channel


@pytest.fixture
async def both(
    graph_api: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[dict[str, WhatsAppChannel]]:
    channels = {
        "aiohttp": _channel(
            graph_api,
            fast=True,
            monkeypatch=monkeypatch,
            timeout=0.5,
            pause=Pause(initial=0, maximum=0),
        ),
        "httpx": _channel(
            graph_api,
            fast=False,
            monkeypatch=monkeypatch,
            timeout=0.5,
            pause=Pause(initial=0, maximum=0),
        ),
    }
    yield channels
    for channel in channels.values():
        await channel.aclose()


async def test_both_clients_send_the_same_requests_and_read_the_same_receipts(
    both: dict[str, WhatsAppChannel], graph_api: FakeGraphAPI
) -> None:
    seen: dict[str, list[tuple[Any, ...]]] = {}
    for name, channel in both.items():
        graph_api.requests.clear()
        receipts = [await channel.send(TO, payload) for payload in PAYLOADS]
        seen[name] = [
            (r.path, r.body, {h: r.headers.get(h) for h in COMPARED_HEADERS}, receipt.external_id)
            for r, receipt in zip(graph_api.requests, receipts, strict=True)
        ]

    assert len(seen["aiohttp"]) == len(PAYLOADS)
    # The fake numbers its wamids: compare each receipt with the request it answered.
    for fast, plain in zip(seen["aiohttp"], seen["httpx"], strict=True):
        assert fast[:3] == plain[:3]
    requests = graph_api.requests
    assert [receipt for *_, receipt in seen["httpx"]] == [r.wamid for r in requests]
    assert requests[0].headers["Authorization"] == f"Bearer {graph_api.token}"


def _outcome(exc: DeliveryError) -> tuple[Any, ...]:
    return type(exc), exc.code, getattr(exc, "is_transient", None), exc.retry_after


@pytest.mark.parametrize(
    "reply",
    [
        Reply.server_error(with_body=True),
        Reply.server_error(with_body=False),
        Reply.rate_limited(status=429),
        Reply.undeliverable(),
        Reply.dropped(),
        Reply.slow(5),
    ],
    ids=["500 error body", "500 without body", "429", "131026", "dropped", "timeout"],
)
async def test_both_clients_give_the_channel_the_same_outcome(
    both: dict[str, WhatsAppChannel], graph_api: FakeGraphAPI, reply: Reply
) -> None:
    outcomes = {}
    for name, channel in both.items():
        graph_api.script(reply)
        with pytest.raises((NotSent, MaybeSent)) as caught:
            await channel.send(TO, PAYLOADS[0])
        outcomes[name] = _outcome(caught.value)

    assert outcomes["aiohttp"] == outcomes["httpx"]


async def test_both_clients_report_a_refused_connection_as_not_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        graph = FakeGraphAPI(base_url=f"http://127.0.0.1:{probe.getsockname()[1]}")
    outcomes = {}
    for fast in (True, False):
        channel = _channel(graph, fast=fast, monkeypatch=monkeypatch)
        try:
            with pytest.raises(NotSent) as caught:
                await channel.send(TO, PAYLOADS[0])
        finally:
            await channel.aclose()
        outcomes[fast] = _outcome(caught.value)

    assert outcomes[True] == outcomes[False] == (NotSent, "connect", True, None)


async def test_pywas_calls_take_the_aiohttp_path(
    graph_api: FakeGraphAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If pywa stopped calling ``request`` with JSON only, its calls would quietly go back
    # to httpx's transport: this fails instead.
    async def no_httpx(*_: Any, **__: Any) -> httpx.Response:
        raise AssertionError("sent through httpx's transport")

    channel = _channel(graph_api, fast=True, monkeypatch=monkeypatch)
    monkeypatch.setattr(httpx.AsyncClient, "send", no_httpx)
    try:
        receipt = await channel.send(TO, PAYLOADS[1])
    finally:
        await channel.aclose()

    assert receipt.external_id == graph_api.requests[0].wamid


def test_the_installed_libraries_are_the_ones_the_fast_path_expects() -> None:
    assert graph_http.mismatch() is None
    assert isinstance(graph_client(timeout=1, connect_timeout=1), GraphHttpClient)


def test_without_aiohttps_error_classes_pywa_gets_httpxs_own_client(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(aiohttp, "ConnectionTimeoutError")

    with caplog.at_level(logging.WARNING, logger="leadbot.whatsapp.send"):
        first = graph_client(timeout=1, connect_timeout=1)
        second = graph_client(timeout=1, connect_timeout=1)

    assert type(first) is type(second) is httpx.AsyncClient
    assert [r.getMessage() for r in caplog.records] == [
        "WhatsApp sends go through httpx's own transport (more CPU a send): "
        f"httpx {httpx.__version__} / aiohttp {aiohttp.__version__}: "
        "no aiohttp.ConnectionTimeoutError"
    ]  # warned once


def test_an_httpx_whose_request_takes_no_json_is_a_mismatch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def request(self: Any, method: str, url: str, *, content: bytes = b"") -> Any: ...

    monkeypatch.setattr(httpx.AsyncClient, "request", request)

    reason = graph_http.mismatch()
    assert reason is not None and "AsyncClient.request(json=)" in reason
    assert "headers=" in reason and "params=" in reason
