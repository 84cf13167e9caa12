"""A fake HubSpot CRM API: a real aiohttp app on 127.0.0.1 (a free port), v3 wire format.

Implements what the sync uses, with HubSpot's request and response JSON:
``POST /crm/v3/objects/{type}/batch/upsert`` (``idProperty`` must be ``email`` for contacts
or a unique-value property: ``leadbot_lead_id``), ``…/batch/update``, ``…/batch/create``
(with ``associations``), ``…/search`` (``EQ`` and ``CONTAINS_TOKEN``; OR-ed groups),
``POST /crm/v4/associations/{from}/{to}/batch/associate/default`` and
``GET /crm/v3/owners?email=``. Unique values are unique, as in HubSpot (a second object
with the same email or lead id is refused), so a twin is impossible to hide: it is an error.

Rate limits as HubSpot sends them: every answer but search carries
``X-HubSpot-RateLimit-Max/-Remaining/-Interval-Milliseconds/-Daily/-Daily-Remaining``; past
the rolling window (``per_interval`` per ``interval_ms``) or the day (``daily``) the answer is
``429`` with HubSpot's body (``errorType: RATE_LIMIT``, ``policyName``). Outages: ``down``
answers every request 503 with HubSpot's error body; ``lose_next`` applies the next N
writes and then answers 504 (the client cannot know they were applied); with ``hidden_all``
objects are not found by search yet (search is eventually consistent); ``lose_on`` loses the
answers of the next writes to one path, ``throttle_on`` answers its next requests 429.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

UNIQUE = {"contacts": ("email", "leadbot_lead_id"), "deals": ("leadbot_lead_id",)}


def reference_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 webhook signature, written out from HubSpot's docs (not our code)."""
    source = f"{method}{uri}".encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


@dataclass
class FakeHubSpot:
    """The fake's state and knobs (see the module's docstring)."""

    token: str = "pat-na1-test"
    per_interval: int = 100
    interval_ms: int = 10_000
    daily: int = 250_000
    owners: dict[str, str] = field(default_factory=dict)  # email → owner id
    down: bool = False
    lose_next: int = 0
    hidden_all: bool = False
    lose_on: dict[str, int] = field(default_factory=dict)  # path → answers to lose
    throttle_on: dict[str, int] = field(default_factory=dict)  # path → 429s to answer
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {"contacts": {}, "deals": {}, "notes": {}}
    )
    associations: set[tuple[str, str, str, str]] = field(default_factory=set)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    base_url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(501))
    _window: deque[float] = field(default_factory=deque)
    _today: int = 0
    _unique: dict[tuple[str, str, str], str] = field(default_factory=dict)

    # -- what tests read -----------------------------------------------------------------

    def properties(self, object_type: str) -> list[dict[str, Any]]:
        """The properties of every object of ``object_type``."""
        return [o["properties"] for o in self.objects[object_type].values()]

    def by_lead(self, object_type: str, lead_id: int) -> list[dict[str, Any]]:
        """The objects carrying our lead id."""
        return [
            o
            for o in self.objects[object_type].values()
            if o["properties"].get("leadbot_lead_id") == str(lead_id)
        ]

    def spend(self, requests: int) -> None:
        """Another integration spends ``requests`` of the 10-second window now."""
        self._window.extend([time.monotonic()] * requests)

    def statuses(self, status: int) -> int:
        """How many requests were answered ``status``."""
        return sum(1 for _, _, s in self.requests if s == status)

    # -- the server ----------------------------------------------------------------------

    @web.middleware
    async def gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Auth, outage and rate limits, then the endpoint; every answer recorded."""
        response = await self._gate(request, handler)
        self.requests.append((request.method, request.path, response.status))
        return response

    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _error(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")
        if self.down:
            return _error(503, "Service Unavailable", "SERVICE_UNAVAILABLE")
        search = request.path.endswith("/search")
        now = time.monotonic()
        while self._window and self._window[0] <= now - self.interval_ms / 1000:
            self._window.popleft()
        if self.throttle_on.get(request.path, 0) > 0:
            self.throttle_on[request.path] -= 1
            return self._throttled("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
        if self._today >= self.daily:
            return self._throttled("DAILY", "daily")
        if not search and len(self._window) >= self.per_interval:
            return self._throttled("TEN_SECONDLY_ROLLING", "ten_secondly_rolling")
        self._today += 1
        if not search:
            self._window.append(now)
        response: web.StreamResponse = await handler(request)
        if self.lose_on.get(request.path, 0) > 0:
            self.lose_on[request.path] -= 1
            return _error(504, "Gateway Timeout", "GATEWAY_TIMEOUT")
        if self.lose_next and request.method == "POST" and not search:
            self.lose_next -= 1
            return _error(504, "Gateway Timeout", "GATEWAY_TIMEOUT")
        if not search:  # search answers carry no rate-limit headers (as documented)
            response.headers.update(self._limit_headers())
        return response

    def _limit_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self.per_interval),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.per_interval - len(self._window))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.interval_ms),
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self._today)),
        }

    def _throttled(self, policy: str, name: str) -> web.Response:
        body = {
            "status": "error",
            "message": f"You have reached your {name} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "c033-fake",
            "policyName": policy,
            "requestId": "3d3e-fake",
        }
        return web.json_response(body, status=429, headers=self._limit_headers())

    async def upsert(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        inputs = (await request.json())["inputs"]
        results = []
        for item in inputs:
            prop, value = item["idProperty"], str(item["id"])
            if prop not in UNIQUE.get(object_type, ()):
                return _error(400, f"{prop} is not a unique property", "VALIDATION_ERROR")
            found = self._find(object_type, prop, value)
            properties = {**item.get("properties", {}), prop: value}
            if found is None:
                obj = self._create(object_type, properties)
                if isinstance(obj, web.Response):
                    return obj
                results.append({**obj, "new": True})
            else:
                clash = self._clash(object_type, properties, found["id"])
                if clash is not None:
                    return clash
                found["properties"].update(properties)
                found["updatedAt"] = _now()
                self._index(object_type, found)
                results.append({**found, "new": False})
        return web.json_response(_batch(results))

    async def update(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        results = []
        for item in (await request.json())["inputs"]:
            found = self.objects[object_type].get(str(item["id"]))
            if found is None:
                return _error(404, f"{item['id']} not found", "OBJECT_NOT_FOUND")
            clash = self._clash(object_type, item["properties"], found["id"])
            if clash:
                return clash
            found["properties"].update(item["properties"])
            self._index(object_type, found)
            results.append(found)
        return web.json_response(_batch(results))

    async def create(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        results = []
        for item in (await request.json())["inputs"]:
            if object_type == "notes" and "hs_timestamp" not in item["properties"]:
                return _error(400, "hs_timestamp is required", "VALIDATION_ERROR")
            obj = self._create(object_type, item["properties"])
            if isinstance(obj, web.Response):
                return obj
            for association in item.get("associations", []):
                [kind] = association["types"]
                target = {202: "contacts", 214: "deals"}[kind["associationTypeId"]]
                self.associations.add((object_type, obj["id"], target, association["to"]["id"]))
            results.append(obj)
        return web.json_response(_batch(results), status=201)

    async def search(self, request: web.Request) -> web.Response:
        object_type = request.match_info["type"]
        body = await request.json()
        results = [
            o
            for o in self.objects[object_type].values()
            if not self.hidden_all
            and any(_matches(o, g["filters"]) for g in body.get("filterGroups", []))
        ]
        return web.json_response({"total": len(results), "results": results[:100]})

    async def associate(self, request: web.Request) -> web.Response:
        from_type, to_type = request.match_info["from"], request.match_info["to"]
        results = []
        for item in (await request.json())["inputs"]:
            a, b = str(item["from"]["id"]), str(item["to"]["id"])
            if a not in self.objects[from_type] or b not in self.objects[to_type]:
                return _error(400, f"{a} or {b} does not exist", "VALIDATION_ERROR")
            self.associations.add((from_type, a, to_type, b))
            results.append({"fromObjectTypeId": from_type, "fromObjectId": a, "toObjectId": b})
        return web.json_response(_batch(results))

    async def list_owners(self, request: web.Request) -> web.Response:
        email = request.query.get("email", "").lower()
        found = [
            {"id": owner_id, "email": address, "type": "PERSON", "archived": False}
            for address, owner_id in self.owners.items()
            if not email or address == email
        ]
        return web.json_response({"results": found})

    def _find(self, object_type: str, prop: str, value: str) -> dict[str, Any] | None:
        if prop in UNIQUE.get(object_type, ()):  # indexed, as HubSpot's unique values are
            object_id = self._unique.get((object_type, prop, value.lower()))
            return self.objects[object_type].get(object_id or "")
        for obj in self.objects[object_type].values():
            stored = obj["properties"].get(prop)
            if stored is not None and str(stored).lower() == value.lower():
                return obj
        return None

    def _index(self, object_type: str, obj: dict[str, Any]) -> None:
        for prop in UNIQUE.get(object_type, ()):
            value = obj["properties"].get(prop)
            if value:
                self._unique[(object_type, prop, str(value).lower())] = obj["id"]

    def _clash(
        self, object_type: str, properties: dict[str, Any], own_id: str
    ) -> web.Response | None:
        for prop in UNIQUE.get(object_type, ()):
            value = properties.get(prop)
            other = self._find(object_type, prop, str(value)) if value else None
            if other is not None and other["id"] != own_id:
                message = f"Object already exists. Existing ID: {other['id']}"
                return _error(409, message, "OBJECT_ALREADY_EXISTS")
        return None

    def _create(self, object_type: str, properties: dict[str, Any]) -> Any:
        clash = self._clash(object_type, properties, "")
        if clash:
            return clash
        object_id = str(next(self._ids))
        at = _now()
        obj = {
            "id": object_id,
            "properties": {**properties, "hs_object_id": object_id, "createdate": at},
            "createdAt": at,
            "updatedAt": at,
            "archived": False,
        }
        self.objects[object_type][object_id] = obj
        self._index(object_type, obj)
        return obj


def _matches(obj: dict[str, Any], filters: list[dict[str, str]]) -> bool:
    for f in filters:
        value = str(obj["properties"].get(f["propertyName"], ""))
        if f["operator"] == "EQ" and value.lower() != str(f["value"]).lower():
            return False
        if f["operator"] == "CONTAINS_TOKEN":
            words = value.replace("<br>", " ").split()
            if f["value"] not in words:
                return False
    return True


def _batch(results: list[dict[str, Any]]) -> dict[str, Any]:
    at = _now()
    return {"status": "COMPLETE", "results": results, "startedAt": at, "completedAt": at}


def _error(status: int, message: str, category: str) -> web.Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": "b688-fake",
        "category": category,
        "errors": [],
    }
    return web.json_response(body, status=status)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@asynccontextmanager
async def running(fake: FakeHubSpot) -> AsyncIterator[FakeHubSpot]:
    """Serve ``fake`` on 127.0.0.1 (a free port) while the block runs."""
    app = web.Application(middlewares=[fake.gate])
    objects = "/crm/v3/objects/{type}"
    app.router.add_post(f"{objects}/batch/upsert", fake.upsert)
    app.router.add_post(f"{objects}/batch/update", fake.update)
    app.router.add_post(f"{objects}/batch/create", fake.create)
    app.router.add_post(f"{objects}/search", fake.search)
    app.router.add_post("/crm/v4/associations/{from}/{to}/batch/associate/default", fake.associate)
    app.router.add_get("/crm/v3/owners", fake.list_owners)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()
