"""Prometheus metrics, in a registry per app so that several apps (tests) never collide."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from bot.http_errors import Handler


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
            "Leads created, by source.",
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
            key = (request.method, route, status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = (
                    self.requests.labels(request.method, route, str(status)),
                    self.latency.labels(route),
                )
            series[0].inc()
            series[1].observe(time.perf_counter() - started)

    async def handle(self, _request: web.Request) -> web.Response:
        """``GET /metrics`` in the Prometheus text format."""
        response = web.Response(body=generate_latest(self.registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response
