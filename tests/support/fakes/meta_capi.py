"""Meta's Conversions API for business messaging, as a real aiohttp server on 127.0.0.1:0.

It checks each request the way Meta does, independently of the code under test
(Meta's "Conversions API for Business Messaging" guide, as verified on Graph v25.0):
``POST /{version}/{dataset}/events`` with a token, a body ``{"data": [event, ...]}`` whose
events carry ``event_name`` (only the names Meta accepts for ``business_messaging``; others:
subcode 2804066), ``event_time`` (unix seconds, not milliseconds, not in the future),
``event_id``, ``action_source: business_messaging``, ``messaging_channel: whatsapp`` and
``user_data`` with ``whatsapp_business_account_id`` and ``ctwa_clid``. A bad request is
answered like Graph answers: HTTP 400 with ``{"error": {"message", "type", "code",
"error_subcode"?, "is_transient", "error_user_msg", "fbtrace_id"}}``; a good one with
``{"events_received": n, "messages": [], "fbtrace_id"}``. Tests script other answers
(a 500, a 429 with ``Retry-After``) in order before the real checks.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ACCEPTED = frozenset({"LeadSubmitted", "Purchase", "AddToCart", "InitiateCheckout", "ViewContent"})
REFUSED_NAME_SUBCODE = 2804066
VERSION = "v25.0"


@dataclass
class Request:
    """One request the fake got, and what it answered."""

    path: str
    token: str
    body: Any
    status: int


@dataclass
class MetaCapi:
    """A dataset that takes events with ``token``; ``script`` answers in order first
    (``(status, headers)``), then the checks decide."""

    dataset_id: str = "1234567890"
    token: str = "capi-token"
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""
    # While set, requests are read and then never answered (until the server stops).
    stall: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def received(self, name: str | None = None) -> list[dict[str, Any]]:
        """The events accepted (named ``name``, if given), in order."""
        return [e for e in self.events if name in (None, e["event_name"])]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.stall:
            self.requests.append(Request(request.path, "", json.loads(raw), 0))
            await self.release.wait()
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        token = token or request.query.get("access_token", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        status, answer, headers = self._answer(request, token, body)
        self.requests.append(Request(request.path, token, body, status))
        return web.json_response(answer, status=status, headers=headers)

    def _answer(
        self, request: web.Request, token: str, body: Any
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.script:
            status, headers = self.script.pop(0)
            transient = status == 429 or status >= 500
            return status, _error("Please retry your request later.", 2, transient), headers
        if request.match_info["version"] != VERSION:
            return _bad(f"Unknown path components: /{request.match_info['version']}", 2500)
        if token != self.token:
            return _bad("Invalid OAuth access token - Cannot parse access token", 190)
        if request.match_info["dataset"] != self.dataset_id:
            return _bad(
                f"Unsupported post request. Object with ID '{request.match_info['dataset']}' "
                "does not exist, cannot be loaded due to missing permissions, or does not "
                "support this operation",
                100,
                subcode=33,
            )
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            return _bad("(#100) The parameter data is required", 100)
        for event in body["data"]:
            problem = _problem(event)
            if problem is not None:
                message, subcode = problem
                return _bad("Invalid parameter", 100, subcode=subcode, user_msg=message)
        self.events.extend(body["data"])
        answer = {"events_received": len(body["data"]), "messages": [], "fbtrace_id": _trace()}
        return 200, answer, {}


def _bad(*args: Any, **kwargs: Any) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Graph's answer to a bad request: HTTP 400 with its error body."""
    return 400, _error(*args, **kwargs), {}


def _problem(event: Any) -> tuple[str, int | None] | None:
    """Why Meta would refuse ``event`` (message, subcode), or None."""
    if not isinstance(event, dict):
        return "Each event must be an object", None
    for name in ("event_name", "event_time", "event_id", "action_source", "messaging_channel"):
        if event.get(name) in (None, ""):
            return f"The parameter {name} is required", None
    if event["event_name"] not in ACCEPTED:
        return f"Event name {event['event_name']} is not supported", REFUSED_NAME_SUBCODE
    when = event["event_time"]
    if not isinstance(when, int) or when > time.time() + 60:
        return "event_time must be a unix timestamp in seconds, not in the future", None
    if event["action_source"] != "business_messaging":
        return "action_source must be business_messaging", None
    if event["messaging_channel"] != "whatsapp":
        return "messaging_channel must be whatsapp", None
    user = event.get("user_data")
    if not isinstance(user, dict):
        return "The parameter user_data is required", None
    for name in ("whatsapp_business_account_id", "ctwa_clid"):
        if not isinstance(user.get(name), str) or not user[name]:
            return f"The parameter user_data.{name} is required", None
    return None


def _error(
    message: str,
    code: int,
    transient: bool = False,
    *,
    subcode: int | None = None,
    user_msg: str | None = None,
) -> dict[str, Any]:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": transient,
        "fbtrace_id": _trace(),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if user_msg is not None:
        error["error_user_title"] = "Invalid parameter"
        error["error_user_msg"] = user_msg
    return {"error": error}


def _trace() -> str:
    return "A" + uuid.uuid4().hex[:20]


@asynccontextmanager
async def running(fake: MetaCapi) -> AsyncIterator[MetaCapi]:
    """Serve ``fake`` on 127.0.0.1 (a free port) while the block runs."""
    app = web.Application()
    app.router.add_post("/{version}/{dataset}/events", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()
