"""An enrichment provider reached over HTTP at a configurable URL (``LEADBOT_ENRICHMENT_URL``).

Contract: ``GET <url>?email=…&domain=…&name=…`` with ``Authorization: Bearer <token>``
(``LEADBOT_ENRICHMENT_TOKEN``) answers 200 with a JSON object, or 404 when it knows nothing.
Recognized keys, top level or under ``person``/``company`` (the shape of Apollo's and People
Data Labs' answers, flattened by a small proxy if needed): ``company`` (or ``company.name``),
``industry``, ``employees`` (a number), ``title``, ``seniority``, ``country``. Anything else
is ignored. Results are cached per email for the life of the process.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Any

import aiohttp

from scheduler.intake.enrichment import EnrichmentError

MAX_BODY = 256 * 1024  # a person record is a few KB; refuse anything absurd
_CACHE = 1024


class HttpEnrichmentProvider:
    """Calls one HTTP endpoint per lead; owns its client session (close with :meth:`aclose`)."""

    name = "http"

    def __init__(self, url: str, *, token: str = "", timeout: float = 5.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout
        self._client: aiohttp.ClientSession | None = None
        self._cache: OrderedDict[str, dict[str, Any] | None] = OrderedDict()

    async def enrich(self, email: str, domain: str, name: str | None) -> dict[str, Any] | None:
        """See :class:`~scheduler.intake.enrichment.EnrichmentProvider`."""
        if email in self._cache:
            self._cache.move_to_end(email)
            return self._cache[email]
        found = await self._fetch(email, domain, name)
        self._cache[email] = found
        while len(self._cache) > _CACHE:
            self._cache.popitem(last=False)
        return found

    async def _fetch(self, email: str, domain: str, name: str | None) -> dict[str, Any] | None:
        if self._client is None:
            self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        params = {"email": email, "domain": domain, **({"name": name} if name else {})}
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            async with self._client.get(self.url, params=params, headers=headers) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    transient = response.status == 429 or response.status >= 500
                    raise EnrichmentError(
                        f"HTTP {response.status}",
                        is_transient=transient,
                        code=f"http_{response.status}",
                    )
                raw = await response.content.read(MAX_BODY + 1)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise EnrichmentError(
                f"{exc.__class__.__name__}: {exc}", is_transient=True, code="unreachable"
            ) from exc
        if len(raw) > MAX_BODY:
            raise EnrichmentError("response too large", is_transient=False, code="too_large")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise EnrichmentError(
                "response is not JSON", is_transient=False, code="bad_json"
            ) from exc
        if not isinstance(body, dict):
            raise EnrichmentError(
                "response is not a JSON object", is_transient=False, code="bad_json"
            )
        return flatten(body)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.close()
            self._client = None


def flatten(body: dict[str, Any]) -> dict[str, Any]:
    """The recognized facts of a provider's answer, as short strings and numbers."""
    raw_person, company = body.get("person"), body.get("company")
    person: dict[str, Any] = raw_person if isinstance(raw_person, dict) else {}
    org: dict[str, Any] = company if isinstance(company, dict) else {}
    facts: dict[str, Any] = {
        "company": org.get("name") if org else company,
        "industry": body.get("industry") or org.get("industry"),
        "employees": body.get("employees") or org.get("employees"),
        "title": body.get("title") or person.get("title"),
        "seniority": body.get("seniority") or person.get("seniority"),
        "country": body.get("country") or person.get("country") or org.get("country"),
    }
    out: dict[str, Any] = {}
    for key, value in facts.items():
        if key == "employees":
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                out[key] = int(value)
        elif isinstance(value, str) and value.strip():
            out[key] = value.strip()[:200]
    return out
