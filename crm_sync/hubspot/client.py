"""A thin aiohttp client over HubSpot's CRM v3 wire format (the endpoints the sync uses).

Every request first takes a slot from the :class:`~crm_sync.hubspot.rate_limit.RateLimiter`
and reports the answer's rate-limit headers back to it. Failures come out as the outbox's
outcomes, since the sync channel is this client's only caller:

- held back by our limiter, or ``429``: :class:`NotSent` with ``attempted=False`` and the
  wait (a throttled row costs no try, so a long throttle never exhausts a row's tries);
- ``423`` (locked), ``5xx``, a refused connection or a timeout: transient :class:`NotSent`.
  A timeout is *retried* although the request may have been applied: every write the sync
  makes is idempotent by construction (upserts keyed on the email or our lead id, notes
  reconciled by their marker), so a second try changes nothing a first one did;
- any other ``4xx`` (a bad token, a missing custom property, a malformed input): permanent
  :class:`NotSent` with HubSpot's message; trying the same request again fails the same way.

The base URL is configurable (``LEADBOT_HUBSPOT_API_URL``): tests point it at a local fake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import orjson

from crm_sync.http_client import LazyHttpClient, retry_after_seconds
from crm_sync.hubspot.rate_limit import HeldBack, RateLimiter
from scheduler.delivery.channels import NotSent

log = logging.getLogger("leadbot.hubspot")

DEFAULT_API_URL = "https://api.hubapi.com"
USER_AGENT = "leadbot-hubspot/1"
BATCH = 100  # inputs per batch request: HubSpot's limit
MAX_RETRY_AFTER = 86400.0  # a 429's Retry-After (undocumented for the API) honoured up to a day
_TRANSIENT = {423, 500, 502, 503, 504}
_ERROR_BODY = 500


class HubSpotClient(LazyHttpClient):
    """The requests the sync makes, with the token and base URL given once."""

    def __init__(
        self,
        token: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 10.0,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.token = token
        self.api_url = api_url.rstrip("/")
        super().__init__(timeout)
        self.limiter = limiter or RateLimiter()
        self._owners: dict[str, str | None] = {}

    async def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """One request; its JSON answer (empty for 204), or :class:`NotSent` as above."""
        try:
            await self.limiter.acquire()
        except HeldBack as exc:
            raise NotSent(
                str(exc), code="rate_limited", retry_after=exc.retry_after, attempted=False
            ) from None
        headers = {"authorization": f"Bearer {self.token}", "user-agent": USER_AGENT}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            headers["content-type"] = "application/json"
        url = self.api_url + path
        try:
            async with self._session().request(
                method, url, data=data, headers=headers, params=params, allow_redirects=False
            ) as reply:
                raw = await reply.read()
                status = reply.status
                retry_after = reply.headers.get("Retry-After")
                answer_headers = reply.headers
        except (TimeoutError, aiohttp.ClientError) as exc:
            what = f"HubSpot {method} {path}: {type(exc).__name__}: {exc}"
            raise NotSent(what, code="network") from exc
        finally:
            self.limiter.done()
        self.limiter.observe(answer_headers)
        if 200 <= status < 300:
            return _json(raw) if raw else {}
        answer = _json(raw)
        message = str(answer.get("message") or raw[:_ERROR_BODY].decode("utf-8", "replace"))
        where = f"HubSpot {method} {path}: HTTP {status}: {message}"
        if status == 429:
            policy = str(answer.get("policyName") or "")
            wait = self.limiter.throttled(
                policy, retry_after_seconds(retry_after, at_most=MAX_RETRY_AFTER)
            )
            raise NotSent(where, code="429", retry_after=wait, attempted=False)
        if status in _TRANSIENT or status >= 500:
            locked = 2.0 if status == 423 else None  # HubSpot: wait at least 2 s when locked
            raise NotSent(where, code=str(status), retry_after=locked)
        raise NotSent(where, code=str(answer.get("category") or status), is_transient=False)

    # -- the endpoints -------------------------------------------------------------------

    async def batch_upsert(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """``POST /crm/v3/objects/{type}/batch/upsert`` (≤ :data:`BATCH` inputs, each
        ``{"idProperty", "id", "properties"}``); the results (order not guaranteed)."""
        path = f"/crm/v3/objects/{object_type}/batch/upsert"
        return _results(await self.request("POST", path, {"inputs": list(inputs)}))

    async def batch_update(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """``POST /crm/v3/objects/{type}/batch/update`` (inputs ``{"id", "properties"}``)."""
        path = f"/crm/v3/objects/{object_type}/batch/update"
        return _results(await self.request("POST", path, {"inputs": list(inputs)}))

    async def batch_create(
        self, object_type: str, inputs: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """``POST /crm/v3/objects/{type}/batch/create`` (inputs ``{"properties",
        "associations"}``); the created objects."""
        path = f"/crm/v3/objects/{object_type}/batch/create"
        return _results(await self.request("POST", path, {"inputs": list(inputs)}))

    async def search(
        self,
        object_type: str,
        filter_groups: Sequence[Sequence[Mapping[str, str]]],
        properties: Sequence[str],
    ) -> list[dict[str, Any]]:
        """``POST /crm/v3/objects/{type}/search`` with OR-ed groups of AND-ed filters (≤ 5
        groups); the first page (up to 100 results). Search is eventually consistent."""
        body = {
            "filterGroups": [{"filters": list(group)} for group in filter_groups],
            "properties": list(properties),
            "limit": 100,
        }
        path = f"/crm/v3/objects/{object_type}/search"
        return _results(await self.request("POST", path, body))

    async def associate_default(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]]
    ) -> None:
        """``POST /crm/v4/associations/{from}/{to}/batch/associate/default``: the default
        (unlabeled) association of each ``(from_id, to_id)``; associating twice is a no-op."""
        inputs = [{"from": {"id": a}, "to": {"id": b}} for a, b in pairs]
        path = f"/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"
        await self.request("POST", path, {"inputs": inputs})

    async def owner_id(self, email: str) -> str | None:
        """The HubSpot owner (user) with ``email``, or None; cached for the process (owners
        change rarely; a rep added to HubSpot later is found after a restart)."""
        key = email.strip().lower()
        if key not in self._owners:
            query = {"email": key, "limit": "1"}
            results = _results(await self.request("GET", "/crm/v3/owners", params=query))
            self._owners[key] = str(results[0]["id"]) if results else None
        return self._owners[key]


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _results(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    results = answer.get("results")
    return [r for r in results if isinstance(r, dict)] if isinstance(results, list) else []
