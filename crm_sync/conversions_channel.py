"""The Conversions API channel: delivers the outbox rows of :mod:`crm_sync.conversions` to
Meta, ``POST {graph}/{version}/{dataset id}/events`` with ``{"data": [event]}``.

The token travels in the ``Authorization`` header (Graph accepts it there as well as in
``access_token``), so it never sits in a URL or a body that might be logged.

Outcomes, as the outbox reads them:

- a 2xx whose ``events_received`` counts the event: sent (the receipt is Meta's
  ``fbtrace_id``);
- a 2xx that does not count it (Meta can refuse events inside a 200), a 4xx with Graph's
  ``{"error": {...}}`` (an unknown dataset, a refused event name, an expired token): a
  permanent :class:`NotSent`; the row ends ``failed`` with Meta's message, code, subcode and
  trace id, for a human to read;
- a 429, a 5xx, an error Graph marks ``is_transient`` or a throttling code, a connection that
  could not be made: a transient :class:`NotSent`, retried with the outbox's backoff (and a
  ``Retry-After`` when given);
- a timeout, or a connection dropped after the request was written: :class:`MaybeSent`, the
  row ends ``uncertain``. Meta dedupes on ``event_id``, so resending one is harmless, but the
  outbox never resends an unknown outcome on its own.
- a row whose payload is not a conversion: a permanent :class:`NotSent` (``bad_payload``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from crm_sync.conversions import ACCEPTED_NAMES, CHANNEL, ConversionsConfig
from crm_sync.http_client import LazyHttpClient, retry_after_seconds
from scheduler.delivery.channels import MaybeSent, NotSent, PayloadError, Receipt

USER_AGENT = "leadbot-capi/1"
_ERROR_BODY = 2000  # bytes of an answer read at most: Graph's errors are short
MAX_RETRY_AFTER = 3600.0
# Graph's throttling codes (application, user, page/account limits): worth trying again.
_THROTTLED = frozenset({4, 17, 32, 613, 80001, 80004})
_REQUIRED = ("event_name", "event_time", "event_id", "action_source", "messaging_channel")


class ConversionPayloadError(PayloadError):
    """The outbox row holds no sendable conversion event."""


class ConversionsChannel(LazyHttpClient):
    """A :class:`scheduler.delivery.channels.Channel` posting conversion events to Meta."""

    name = CHANNEL

    def __init__(self, config: ConversionsConfig, *, timeout: float = 10.0) -> None:
        self.config = config
        super().__init__(timeout)

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """POST the row's event to the dataset; raise :class:`NotSent` or :class:`MaybeSent`
        unless Meta counted it."""
        try:
            event = _event(payload)
        except ConversionPayloadError as exc:
            raise NotSent(str(exc), code="bad_payload", is_transient=False) from None
        if recipient != self.config.dataset_id:
            # Stored for another dataset (the setting changed since): not this one's event.
            raise NotSent(
                f"row is for dataset {recipient}, LEADBOT_META_DATASET_ID is "
                f"{self.config.dataset_id}",
                code="other_dataset",
                is_transient=False,
            )
        body: dict[str, Any] = {"data": [event]}
        if self.config.test_event_code:
            body["test_event_code"] = self.config.test_event_code
        headers = {
            "authorization": f"Bearer {self.config.token}",
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        try:
            post = self._session().post(
                self.config.events_url,
                data=orjson.dumps(body),
                headers=headers,
                allow_redirects=False,
            )
            async with post as reply:
                status = reply.status
                raw = await reply.content.read(_ERROR_BODY)
                retry_after = retry_after_seconds(
                    reply.headers.get("retry-after"), at_most=MAX_RETRY_AFTER
                )
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection was made: nothing reached Meta.
            raise NotSent(f"Meta CAPI: {type(exc).__name__}: {exc}", code="network") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise MaybeSent(
                f"Meta CAPI: no answer ({type(exc).__name__}: {exc}); event_id "
                f"{event['event_id']} can be resent safely (Meta dedupes on it)",
                code="timeout",
            ) from exc
        answer = _json(raw)
        if 200 <= status < 300:
            return _accepted(answer, event)
        raise _refused(status, answer, raw, retry_after)


def _event(payload: Mapping[str, Any]) -> dict[str, Any]:
    event = payload.get("event")
    if not isinstance(event, Mapping):
        raise ConversionPayloadError("the row holds no conversion event")
    missing = [f for f in _REQUIRED if event.get(f) in (None, "")]
    user = event.get("user_data")
    if not isinstance(user, Mapping) or not user.get("ctwa_clid"):
        missing.append("user_data.ctwa_clid")
    if missing:
        raise ConversionPayloadError(f"the conversion event lacks {', '.join(missing)}")
    if event["event_name"] not in ACCEPTED_NAMES:
        raise ConversionPayloadError(f"Meta refuses event name {event['event_name']!r}")
    return dict(event)


def _accepted(answer: Mapping[str, Any], event: Mapping[str, Any]) -> Receipt:
    received = answer.get("events_received")
    if isinstance(received, int) and received >= 1:
        trace = answer.get("fbtrace_id")
        return Receipt(external_id=f"{event['event_id']}:{trace}" if trace else event["event_id"])
    messages = answer.get("messages") or []
    detail = "; ".join(str(m) for m in messages)[:500] if isinstance(messages, list) else ""
    raise NotSent(
        f"Meta CAPI: 200 but the event was not received (events_received={received!r})"
        + (f": {detail}" if detail else ""),
        code="not_received",
        is_transient=False,
    )


def _refused(
    status: int, answer: Mapping[str, Any], raw: bytes, retry_after: float | None
) -> NotSent:
    error = answer.get("error")
    if isinstance(error, Mapping):
        code = error.get("code")
        subcode = error.get("error_subcode")
        parts = [str(error.get("message") or "").strip()]
        if error.get("error_user_msg"):
            parts.append(str(error["error_user_msg"]))
        where = f"code {code}" + (f", subcode {subcode}" if subcode is not None else "")
        trace = f", fbtrace_id {error['fbtrace_id']}" if error.get("fbtrace_id") else ""
        text = f"Meta CAPI: HTTP {status}: {' / '.join(p for p in parts if p)} ({where}{trace})"
        transient = bool(error.get("is_transient")) or code in _THROTTLED
    else:
        code = None
        text = f"Meta CAPI: HTTP {status}: {raw[:300].decode('utf-8', 'replace')}".rstrip(": ")
        transient = False
    transient = transient or status == 429 or status >= 500
    return NotSent(
        text[:1000],
        code=str(code if code is not None else status),
        is_transient=transient,
        retry_after=retry_after,
    )


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
