"""A fake WhatsApp Cloud API: a real aiohttp app on 127.0.0.1, port chosen by the OS.

It implements ``POST /v{version}/{phone_id}/messages`` with Meta's request and response
JSON: a message gets ``{"messaging_product":"whatsapp","contacts":[…],"messages":[{"id":
"wamid.…"}]}``, a read receipt or typing indicator ``{"success": true}``, and errors the
Graph error object (``{"error":{"message","type","code","error_data","fbtrace_id"}}``).
It checks the bearer token and phone id, and refuses what Meta refuses (more than 3 reply
buttons, more than 10 list rows, over-long titles), so a test can tell that our own checks
ran first when it received nothing.

Tests script what the next calls get, in order (the default is success)::

    async with FakeGraphAPI() as graph:
        graph.script(Reply.server_error(), Reply.ok())
        channel = WhatsAppChannel(phone_id=graph.phone_id, token=graph.token,
                                  api_url=graph.base_url)

Scripted replies: ``ok``, ``graph_error(code, status=400)``, ``server_error(with_body=)``,
``rate_limited(status=, code=)``, ``window_closed`` (131047), ``undeliverable`` (131026),
``slow(seconds)`` (accepted, but answered only after the client gave up) and ``drop``
(the connection is closed without an answer). :meth:`FakeGraphAPI.delay_for` makes every
message to one recipient answer only after a delay (a hanging request for that recipient
alone), whatever the script says. Every request is recorded with what it
got; :meth:`FakeGraphAPI.wait_for` waits for a number of requests, and
:meth:`FakeGraphAPI.wait_sent_to` for messages to one recipient, without sleeping.

Chaos runs (``bench/chaos.py``) pass a :class:`FaultPlan` instead of a script: message
sends nobody scripted then fail at random (500 with a Graph error body, 429 with 130429,
a hang past the client's timeout), decided by a hash of the seed, the recipient, the text
and how often that text was sent to them before, so one seed faults the same messages::

    FakeGraphAPI(faults=FaultPlan(seed=7, server_error=0.05, rate_limited=0.03, hang=0.02))
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import pytest
from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``status`` 200 means the message is accepted."""

    status: int = 200
    error: dict[str, Any] | None = None
    raw_body: str | None = None  # an answer that is not a Graph error (a proxy's 502 page)
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def ok(cls) -> Reply:
        """Accept the message."""
        return cls()

    @classmethod
    def graph_error(
        cls, code: int, *, status: int = 400, message: str = "", details: str = ""
    ) -> Reply:
        """Refuse with a Graph error object."""
        error = {
            "message": f"(#{code}) {message or 'Error'}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details or message},
            "fbtrace_id": "AbCdEfGhIjKlMnOp",
        }
        return cls(status=status, error=error)

    @classmethod
    def server_error(cls, *, with_body: bool = True, status: int = 500) -> Reply:
        """A 5xx: from Graph (with an error body) or from something in front of it."""
        if with_body:
            return cls.graph_error(131000, status=status, message="Something went wrong")
        return cls(status=status, raw_body="")

    @classmethod
    def rate_limited(cls, *, status: int = 400, code: int = 130429) -> Reply:
        """Throughput exceeded (Meta answers 130429 with HTTP 400; proxies may say 429)."""
        return cls.graph_error(code, status=status, message="Rate limit hit")

    @classmethod
    def window_closed(cls) -> Reply:
        """131047: more than 24 hours since the recipient last wrote."""
        return cls.graph_error(
            131047,
            message="Re-engagement message",
            details="Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number.",
        )

    @classmethod
    def undeliverable(cls) -> Reply:
        """131026: the recipient cannot receive this message."""
        return cls.graph_error(131026, message="Message Undeliverable")

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        """Accept the message, but answer only after ``seconds`` (or when the fake closes)."""
        return cls(delay=seconds)

    @classmethod
    def dropped(cls) -> Reply:
        """Read the request, then close the connection without answering."""
        return cls(drop=True)


@dataclass
class GraphRequest:
    """One request the fake received and the answer it was scripted to give."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    reply: Reply
    wamid: str | None = None
    at: float = field(default_factory=time.perf_counter)  # arrival, for latency figures
    wall: float = field(default_factory=time.time)  # arrival, to compare with stored times

    @property
    def accepted(self) -> bool:
        """True when the fake took the message (even if the client never saw the answer)."""
        return self.wamid is not None


@dataclass
class FaultPlan:
    """Random faults for message sends nobody scripted (read receipts are never faulted).

    ``server_error``, ``rate_limited`` and ``hang`` are the shares of sends answered 500
    (Graph error body: surely not sent), 429 with code 130429 (throttled) and accepted but
    answered only after ``hang_seconds`` (set it past the client's timeout: the outcome is
    unknown to the client, yet the message reached the recipient). The choice is a hash of
    ``seed``, the recipient, the text and how often that text went to them before, so a run
    with the same seed faults the same messages whatever the timing. ``enabled = False``
    stops all faults (a drain period).
    """

    seed: int = 0
    server_error: float = 0.0
    rate_limited: float = 0.0
    hang: float = 0.0
    hang_seconds: float = 3.0
    enabled: bool = True
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._seen: dict[tuple[str, str], int] = {}

    def draw(self, body: dict[str, Any]) -> Reply:
        """The answer to the message ``body`` (``Reply.ok()`` when no fault is drawn)."""
        to = str(body.get("to") or body.get("recipient") or "")
        text = json.dumps(
            {k: v for k, v in body.items() if k not in ("to", "recipient")}, sort_keys=True
        )
        nth = self._seen.get((to, text), 0)
        self._seen[(to, text)] = nth + 1
        if not self.enabled:
            return Reply.ok()
        digest = hashlib.sha256(f"{self.seed}|{to}|{text}|{nth}".encode()).digest()
        roll = random.Random(digest).random()
        kinds = (
            ("server_error", self.server_error),
            ("rate_limited", self.rate_limited),
            ("hang", self.hang),
        )
        for kind, share in kinds:
            if roll < share:
                self.counts[kind] = self.counts.get(kind, 0) + 1
                if kind == "server_error":
                    return Reply.server_error()
                if kind == "rate_limited":
                    return Reply.rate_limited(status=429)
                return Reply.slow(self.hang_seconds)
            roll -= share
        return Reply.ok()


@dataclass
class FakeGraphAPI:
    """Scriptable fake of the Cloud API messages endpoint (see the module docstring).

    ``faults`` (optional): a :class:`FaultPlan` answering the sends nobody scripted.
    """

    phone_id: str = "106540352242922"
    token: str = "test-graph-token"
    requests: list[GraphRequest] = field(default_factory=list)
    replies: deque[Reply] = field(default_factory=deque)
    base_url: str = ""
    faults: FaultPlan | None = None

    def __post_init__(self) -> None:
        self._delays: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- scripting and inspection ------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue the answers of the next calls (after those already queued)."""
        self.replies.extend(replies)

    def delay_for(self, recipient: str, seconds: float) -> None:
        """Answer every later message to ``recipient`` (digits, ``+`` optional) only after
        ``seconds`` (released early when the fake closes)."""
        self._delays[recipient.lstrip("+")] = seconds

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the messages the fake accepted (what would reach the recipients)."""
        return [r.body for r in self.requests if r.accepted and "type" in r.body]

    def sent_to(self, recipient: str) -> list[dict[str, Any]]:
        """Accepted message bodies addressed to ``recipient``."""
        return [m for m in self.messages if recipient in (m.get("to"), m.get("recipient"))]

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[GraphRequest]:
        """Wait until ``count`` requests have arrived; return them."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    async def wait_sent_to(
        self, recipient: str, count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` messages to ``recipient`` were accepted; return them all."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.sent_to(recipient)) >= count)
        return self.sent_to(recipient)

    def settings(self) -> dict[str, str]:
        """``Settings`` overrides that point the service at this fake."""
        return {
            "whatsapp_phone_id": self.phone_id,
            "whatsapp_token": self.token,
            "whatsapp_api_url": self.base_url,
        }

    # -- the endpoint ------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, 190, "Error validating access token")
        if request.match_info["phone_id"] != self.phone_id:
            return _error(400, 100, "Unsupported post request: unknown phone number id")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, 100, "Invalid JSON")
        if self.replies:
            reply = self.replies.popleft()
        elif self.faults is not None and "type" in body:
            reply = self.faults.draw(body)
        else:
            reply = Reply.ok()
        problem = _invalid(body)
        if problem:
            reply = Reply.graph_error(
                131009, message="Parameter value is not valid", details=problem
            )
        record = GraphRequest(request.path, dict(request.headers), body, reply)
        if reply.status == 200 and not reply.drop:
            record.wamid = f"wamid.HBgMOTcyNTAwMDAwMDAwFQIAERgS{next(self._ids):08d}"
        async with self._changed:
            self.requests.append(record)
            self._changed.notify_all()
        if reply.drop:
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # aiohttp ends the handler without writing
        delay = max(reply.delay, self._delays.get(str(body.get("to", "")).lstrip("+"), 0.0))
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), delay)
        if reply.error is not None:
            return web.json_response({"error": reply.error}, status=reply.status)
        if reply.raw_body is not None:
            return web.Response(status=reply.status, text=reply.raw_body)
        if "type" not in body:  # read receipt / typing indicator
            return web.json_response({"success": True})
        to = body.get("to") or body.get("recipient")
        answer: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": str(to).lstrip("+")}],
            "messages": [{"id": record.wamid}],
        }
        if body["type"] == "template":
            answer["messages"][0]["message_status"] = "accepted"
        return web.json_response(answer)

    # -- server ------------------------------------------------------------------------------

    async def start(self) -> Self:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_post("/v{version}/{phone_id}/messages", self._messages)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        """Release slow answers and stop the server."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _error(status: int, code: int, message: str) -> web.Response:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Fake"}
    return web.json_response({"error": error}, status=status)


def _invalid(body: dict[str, Any]) -> str | None:
    """What Meta would refuse in a message body (the limits our channel must check first)."""
    if body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if "type" not in body:
        return None if body.get("status") == "read" else "type is required"
    if not (body.get("to") or body.get("recipient")):
        return "to is required"
    interactive = body.get("interactive") or {}
    action = interactive.get("action") or {}
    if interactive.get("type") == "button":
        buttons = action.get("buttons", [])
        if not 1 <= len(buttons) <= 3:
            return "buttons: 1 to 3 allowed"
        if any(len(b["reply"]["title"]) > 20 for b in buttons):
            return "button title too long"
    if interactive.get("type") == "list":
        rows = [row for section in action.get("sections", []) for row in section["rows"]]
        if not 1 <= len(rows) <= 10:
            return "rows: 1 to 10 allowed"
        if any(len(r["title"]) > 24 or len(r.get("description") or "") > 72 for r in rows):
            return "row title or description too long"
    if body["type"] == "text" and len(body["text"]["body"]) > 4096:
        return "text body too long"
    return None


@pytest.fixture
async def graph_api() -> AsyncIterator[FakeGraphAPI]:
    """A running fake Cloud API (import this fixture into a conftest to use it)."""
    async with FakeGraphAPI() as fake:
        yield fake
