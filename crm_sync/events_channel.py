"""The events channel: delivers the outbox rows of
:mod:`scheduler.pipeline.outbound_events` to their endpoints as Standard Webhooks (signed
JSON POSTs).

The body is the stored event, serialized the same way on every try, and its ``webhook-id``
is the event's id, so a receiver dedupes retries on it; ``webhook-timestamp`` is the time of
this try (receivers reject stale timestamps, 5 minutes by default).

Outcomes, as the outbox reads them: a 2xx is delivered; anything else (a 4xx, a 5xx, a
refused connection, a timeout) is :class:`NotSent` and transient, so the row is retried with
the outbox's backoff and ends ``failed`` (the dead letter, listed by ``GET /api/events/failed``)
once its tries run out. Unlike a message to a person, a timeout is retried too: event
delivery is at-least-once by contract (receivers dedupe on ``webhook-id``), and an event a
receiver never got is worse than one it gets twice. An endpoint no longer configured fails
the row at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from crm_sync.http_client import LazyHttpClient, retry_after_seconds
from crm_sync.signing import signed_headers
from scheduler.delivery.channels import NotSent, Receipt
from scheduler.pipeline.outbound_events import CHANNEL, Endpoint
from scheduler.store.models import utcnow

USER_AGENT = "leadbot-events/1"
_ERROR_BODY = 300  # characters of a receiver's error body kept on the row
MAX_RETRY_AFTER = 3600.0  # a receiver's Retry-After is honoured up to an hour


class EventsChannel(LazyHttpClient):
    """A :class:`scheduler.delivery.channels.Channel` posting signed events to endpoints."""

    name = CHANNEL

    def __init__(
        self,
        endpoints: Iterable[Endpoint],
        *,
        timeout: float = 10.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.endpoints = {e.name: e for e in endpoints}
        super().__init__(timeout)
        self.clock = clock

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """POST the row's event to its endpoint, signed; raise :class:`NotSent` unless 2xx."""
        endpoint = self.endpoints.get(str(payload.get("endpoint", "")))
        if endpoint is None:
            raise NotSent(
                f"endpoint {payload.get('endpoint')!r} is no longer configured",
                code="unknown_endpoint",
                is_transient=False,
            )
        event = payload.get("event")
        if not isinstance(event, Mapping) or not isinstance(event.get("id"), str):
            raise NotSent("the row holds no event", code="bad_payload", is_transient=False)
        body = orjson.dumps(event)
        headers = signed_headers(endpoint.secret, event["id"], self.clock(), body)
        headers |= {"content-type": "application/json", "user-agent": USER_AGENT}
        try:
            # No redirects: the endpoint is the URL the operator configured, nothing else.
            post = self._session().post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            )
            async with post as reply:
                if 200 <= reply.status < 300:
                    return Receipt(external_id=f"{endpoint.name}:{event['id']}")
                start = await reply.content.read(_ERROR_BODY * 4)  # never a whole huge body
                text = start.decode("utf-8", "replace")[:_ERROR_BODY]
                retry_after = retry_after_seconds(
                    reply.headers.get("retry-after"), at_most=MAX_RETRY_AFTER
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise NotSent(f"{endpoint.name}: {type(exc).__name__}: {exc}", code="network") from exc
        raise NotSent(
            f"{endpoint.name}: HTTP {reply.status}: {text}".rstrip(": "),
            code=str(reply.status),
            retry_after=retry_after,
        )
