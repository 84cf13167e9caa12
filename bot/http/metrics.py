"""Prometheus metrics, in a registry per app so that several apps (tests) never collide.

``/metrics`` needs no token, and every distinct label value is a series kept for the life
of the process: so labels only ever take values from closed sets. Free text a client
controls (a lead's ``source``, the HTTP method) is mapped onto one (:func:`source_label`,
:func:`method_label`); routes are the app's own templates; statuses and stages are closed.
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from bot.http.errors import Handler

SOURCE_LABELS = ("whatsapp", "email", "form", "ad", "import", "api", "other")
"""Every value the ``source`` label of ``leadbot_leads_created`` can take."""

# Words of a free-text source, first match wins (checked in this order).
_SOURCE_WORDS = (
    ("whatsapp", frozenset({"whatsapp", "wa", "ctwa", "wame"})),
    (
        "ad",
        frozenset(
            {
                "ad",
                "ads",
                "adwords",
                "ppc",
                "cpc",
                "paid",
                "facebook",
                "fb",
                "meta",
                "instagram",
                "google",
                "linkedin",
                "tiktok",
                "campaign",
            }
        ),
    ),
    ("email", frozenset({"email", "mail", "newsletter", "mailchimp", "outreach"})),
    (
        "form",
        frozenset(
            {
                "form",
                "forms",
                "web",
                "website",
                "landing",
                "contact",
                "signup",
                "typeform",
                "webinar",
            }
        ),
    ),
    ("import", frozenset({"import", "csv", "upload", "crm", "hubspot", "salesforce"})),
    ("api", frozenset({"api", "calendly", "zapier", "integration"})),
)
_WORD = re.compile(r"[a-z]+")
METHOD_LABELS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def source_label(source: str | None) -> str:
    """The closed label for a lead's free-text ``source`` (one of :data:`SOURCE_LABELS`):
    no source is ``api`` (it came through the intake API without saying), a source naming
    none of the known kinds is ``other``. Never the text itself: it may be anything, an
    email address included."""
    words = set(_WORD.findall((source or "").lower()))
    if not words:
        return "api"
    for label, known in _SOURCE_WORDS:
        if words & known:
            return label
    return "other"


def method_label(method: str) -> str:
    """The HTTP method, or ``other`` for any method outside the standard set (aiohttp
    accepts any token as a method)."""
    return method if method in METHOD_LABELS else "other"


class Metrics:
    """The service's metrics and the ``/metrics`` endpoint that exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "leadbot_http_requests",
            "HTTP requests by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "leadbot_http_request_seconds",
            "HTTP request latency by route.",
            ["route"],
            registry=self.registry,
        )
        self.leads_created = Counter(
            "leadbot_leads_created",
            "Leads created through the API, by kind of source (closed set: SOURCE_LABELS).",
            ["source"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "leadbot_stage_transitions",
            "Stage moves applied.",
            ["from_stage", "to_stage"],
            registry=self.registry,
        )
        # The labelled series of each (method, route, status) seen: ``labels()`` takes a
        # lock and builds its key on every call, and this runs on every request.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count and time every request by its route template (not its raw path)."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            method = method_label(request.method)
            key = (method, route, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.requests.labels(method, route, str(status)),
                    self.latency.labels(route),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)

    async def handle(self, _request: web.Request) -> web.Response:
        """``GET /metrics`` in the Prometheus text format."""
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response
