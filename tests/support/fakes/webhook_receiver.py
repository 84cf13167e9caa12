"""A Standard Webhooks receiver (n8n, Zapier, Make in tests): a real aiohttp server on
127.0.0.1:0 that verifies each delivery the way the spec says, independently of the code
under test, and answers with the statuses it is told to.

Verification (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec):
``base64(HMAC-SHA256(base64decode(secret without "whsec_"), "{id}.{timestamp}.{body}"))``
must equal one of the space-separated ``v1,<sig>`` entries of ``webhook-signature``, and the
timestamp must be within 5 minutes of now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOLERANCE_SECONDS = 5 * 60


def reference_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The spec's ``v1`` signature, written out from the spec (not the library)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> bool:
    """Whether a delivery carries a valid, fresh Standard Webhooks signature."""
    msg_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not msg_id or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = reference_signature(secret, msg_id, timestamp, body)
    offered = headers.get("webhook-signature", "").split(" ")
    return any(hmac.compare_digest(expected, s) for s in offered)


@dataclass
class Delivery:
    """One request the receiver got."""

    endpoint: str
    msg_id: str
    verified: bool
    event: dict[str, Any]
    status: int


@dataclass
class Receiver:
    """Endpoints ``/hooks/<name>``, each with its secret and scripted answers (statuses
    answered in order, then 200; ``fail_always`` names answer 500 every time)."""

    secrets: dict[str, str]
    script: dict[str, list[int]] = field(default_factory=dict)
    fail_always: set[str] = field(default_factory=set)
    deliveries: list[Delivery] = field(default_factory=list)
    base_url: str = ""

    def url(self, name: str) -> str:
        return f"{self.base_url}/hooks/{name}"

    def accepted(self, endpoint: str | None = None) -> list[Delivery]:
        """The verified deliveries answered 2xx (at ``endpoint``, if given)."""
        return [
            d
            for d in self.deliveries
            if d.verified and d.status < 300 and endpoint in (None, d.endpoint)
        ]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        ok = verify(self.secrets[name], headers, body, time.time())
        if not ok:
            status = 401
        elif name in self.fail_always:
            status = 500
        else:
            queue = self.script.get(name, [])
            status = queue.pop(0) if queue else 200
        self.deliveries.append(
            Delivery(name, headers.get("webhook-id", ""), ok, json.loads(body), status)
        )
        return web.json_response({"ok": status < 300}, status=status)


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[Receiver]:
    """Serve ``receiver`` on 127.0.0.1 (a free port) while the block runs."""
    app = web.Application()
    app.router.add_post("/hooks/{name}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.base_url = f"http://127.0.0.1:{port}"
    try:
        yield receiver
    finally:
        await runner.cleanup()
