"""The WhatsApp channel: outbox payloads sent through the Cloud API with pywa's async client.

What it adds on top of pywa, in the order a send goes through it:

1. WhatsApp's limits are checked first (:mod:`bot.channels.whatsapp_limits`): an oversized
   payload is a permanent :class:`NotSent` and never reaches the Graph API.
2. The 24-hour service window is tracked by us (Meta usually accepts a free-form message
   outside it with a 200 and fails it later, by status webhook): a free-form message to
   someone whose last inbound message is older than 24 h goes out as the configured
   template instead. The window comes with the payload (``window_until``, set by whoever
   enqueued it and knew the lead: a reply to an inbound message is inside it by
   definition), so a send costs no database query; only a payload without one is looked
   up (:class:`ServiceWindow`). A synchronous 131047 leads to the same fallback.
3. A per-number token bucket keeps us under the throughput limit, and a throttling answer
   pauses the whole channel (backing off while it lasts).
4. Every outcome is mapped to the outbox's rules: a receipt with the ``wamid``; ``NotSent``
   (transient or permanent) when the message surely did not go out; ``MaybeSent`` when it
   may have (timeout after the request left, a 5xx without a Graph error body, a dropped
   connection), so it is never resent.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import httpx
from pywa.types.callback import Button, Section, SectionList, SectionRow, URLButton
from pywa_async import utils
from pywa_async.client import WhatsApp
from pywa_async.errors import WhatsAppError
from pywa_async.types.templates import TemplateLanguage

from bot.channels.graph_http import graph_client
from bot.channels.throttle import Pause, RateLimited, TokenBucket
from bot.channels.whatsapp_limits import Choice, Outgoing, WhatsAppPayloadError, parse_payload
from bot.whatsapp.payloads import SERVICE_WINDOW, window_open
from scheduler.delivery.outbox import DeliveryError, MaybeSent, NotSent, Receipt
from scheduler.store import Sessions
from scheduler.store.leads import close_service_window, service_window
from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.whatsapp.send")

# Codes that mean the number (or app, or account) is over its rate: pause every send.
NUMBER_THROTTLE_CODES = frozenset({4, 80007, 130429})
# Too many messages to this one recipient: only this message waits (the pair limit is
# about one message per 6 s), the rest of the channel goes on.
PAIR_THROTTLE_CODE = 131056
PAIR_RETRY_AFTER = 6.0
# Graph's "try again later" codes: unknown/temporary service errors.
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
WINDOW_CLOSED_CODE = 131047

Clock = Callable[[], datetime]


class ServiceWindow(Protocol):
    """Where the channel learns whether a recipient's 24-hour window is open."""

    async def is_open(self, recipient: str, now: datetime) -> bool:
        """True when a free-form message to ``recipient`` is allowed at ``now``."""
        ...

    async def closed(self, recipient: str, now: datetime) -> None:
        """Meta refused a free-form message to ``recipient`` (131047): remember it."""
        ...


class LeadServiceWindow:
    """The window from the lead's row: open when their last inbound message is less than
    24 h old and Meta has not reported 131047 since (``whatsapp_window_closed_at``)."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def is_open(self, recipient: str, now: datetime) -> bool:
        """See :class:`ServiceWindow`; a number that is no lead's has no window."""
        async with self.sessions() as session:
            row = await service_window(session, recipient)
        if row is None:
            return False
        last_inbound_at, closed = row
        if last_inbound_at is None:
            return False
        if closed is not None and closed >= last_inbound_at:
            return False
        return bool(now - last_inbound_at < SERVICE_WINDOW)

    async def closed(self, recipient: str, now: datetime) -> None:
        """See :class:`ServiceWindow`."""
        async with self.sessions.begin() as session:
            await close_service_window(session, recipient, now)


class WhatsAppChannel:
    """A :class:`scheduler.delivery.outbox.Channel` named ``whatsapp`` on one business number."""

    name = "whatsapp"

    def __init__(
        self,
        *,
        phone_id: str,
        token: str,
        api_url: str = "https://graph.facebook.com",
        template: str = "",
        template_language: str = "en_US",
        window: ServiceWindow | None = None,
        rate: float = 80.0,
        timeout: float = 10.0,
        clock: Clock = utcnow,
        bucket: TokenBucket | None = None,
        pause: Pause | None = None,
    ) -> None:
        self.template = template
        self.template_language = template_language
        # None: no tracking of our own (tests); Meta's 131047 is still handled.
        self.window = window
        self._clock = clock
        self.bucket = bucket or TokenBucket(rate)
        self.pause = pause or Pause()
        # Connecting is bounded separately: a connect timeout surely sent nothing.
        self._http = graph_client(timeout=timeout, connect_timeout=min(timeout, 5.0))
        self._client = WhatsApp(phone_id=phone_id, token=token, session=self._http)
        # pywa hardcodes graph.facebook.com as the session's base URL; the session is ours,
        # so point it at the configured server (a fake one in tests) after pywa set it.
        version = utils.Version.GRAPH_API.value
        self._http.base_url = httpx.URL(f"{api_url.rstrip('/')}/v{version}")
        self.counts: Counter[str] = Counter()

    async def aclose(self) -> None:
        """Close the HTTP client (pywa never closes a session it was given)."""
        await self._http.aclose()

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Send one outbox payload; raise :class:`NotSent` or :class:`MaybeSent`."""
        try:
            outgoing = parse_payload(payload)
        except WhatsAppPayloadError as exc:
            self.counts["invalid"] += 1
            raise NotSent(
                f"not sendable on WhatsApp: {exc}", code="invalid_payload", is_transient=False
            ) from None
        if outgoing.is_free_form and not await self._window_open(recipient, payload):
            self.counts["window_template"] += 1
            outgoing = self._fallback(outgoing, "the 24-hour window is closed")
        try:
            return await self._send(recipient, outgoing)
        except _WindowClosed as exc:
            # Meta knows better than our bookkeeping (a message we missed, a clock skew):
            # the free-form message was refused, so the template is safe to send instead.
            self.counts["window_closed_131047"] += 1
            log.warning(
                "whatsapp %s: 131047 outside the 24-hour window; sending the template", recipient
            )
            if not outgoing.is_free_form:
                raise NotSent(str(exc), code=str(WINDOW_CLOSED_CODE), is_transient=False) from None
            if self.window is not None:
                await self.window.closed(recipient, self._clock())
            return await self._send(recipient, self._fallback(outgoing, str(exc)))

    async def _window_open(self, recipient: str, payload: Mapping[str, Any]) -> bool:
        carried = window_open(payload, self._clock())
        if carried is not None:
            return carried
        if self.window is None:
            return True
        return await self.window.is_open(recipient, self._clock())

    def _fallback(self, outgoing: Outgoing, why: str) -> Outgoing:
        if not self.template:
            raise NotSent(
                f"{why} and no template is configured (LEADBOT_WHATSAPP_TEMPLATE)",
                code="window_closed",
                is_transient=False,
            )
        return Outgoing(
            "template", outgoing.text, template=self.template, language=self.template_language
        )

    async def _send(self, recipient: str, outgoing: Outgoing) -> Receipt:
        paused = self.pause.remaining()
        if paused > 0:
            raise NotSent(
                "whatsapp sending is paused after throttling",
                code="paused",
                retry_after=paused,
                attempted=False,
            )
        try:
            await self.bucket.acquire()
        except RateLimited as exc:
            raise NotSent(
                str(exc), code="rate_limited", retry_after=exc.wait, attempted=False
            ) from None
        episode = self.pause.episode
        try:
            sent = await self._call(recipient, outgoing)
        except WhatsAppError as exc:
            raise self._graph_failure(exc, episode) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # The request never left this machine.
            self.counts["not_connected"] += 1
            raise NotSent(f"cannot reach the Graph API: {exc!r}", code="connect") from None
        except httpx.RequestError as exc:
            # A read/write timeout or a dropped connection: it may have been accepted.
            self.counts["uncertain"] += 1
            raise MaybeSent(f"no answer from the Graph API: {exc!r}", code="timeout") from None
        self.pause.reset()
        self.counts["sent"] += 1
        return Receipt(external_id=sent)

    async def _call(self, to: str, outgoing: Outgoing) -> str:
        client = self._client
        if outgoing.kind == "template":
            # Positional body parameters, in Meta's own component JSON.
            body = [{"type": "text", "text": p} for p in outgoing.params]
            params = [{"type": "BODY", "parameters": body}] if body else None
            try:
                language = TemplateLanguage(outgoing.language)
            except Exception:  # pywa's enum raises various errors for unknown codes
                raise NotSent(
                    f"unknown template language {outgoing.language!r}",
                    code="invalid_payload",
                    is_transient=False,
                ) from None
            result = await client.send_template(
                to.lstrip("+"), name=outgoing.template, language=language, params=params
            )
            return result.id
        buttons: Any = None
        if outgoing.kind == "buttons":
            buttons = [Button(title=c.title, callback_data=c.id) for c in outgoing.choices]
        elif outgoing.kind == "list":
            buttons = SectionList(
                button_title=outgoing.button,
                # One section; WhatsApp wants it titled, and the menu label fits (≤ 20 < 24).
                sections=[Section(title=outgoing.button, rows=_rows(outgoing.choices))],
            )
        elif outgoing.kind == "cta_url":
            buttons = URLButton(title=outgoing.button, url=outgoing.url)
        message = await client.send_message(to.lstrip("+"), outgoing.text, buttons=buttons)
        return message.id

    def _graph_failure(self, exc: WhatsAppError, episode: int) -> DeliveryError:
        """Map a Graph API error answer to the outbox's outcome (``episode``: the throttling
        pause the request left in, see :meth:`Pause.trip`)."""
        status = exc.status_code or 0
        code = exc.code
        described = f"Graph API error {code} (HTTP {status}): {exc.message}"
        if status >= 500 and not _has_error_body(exc.raw_response):
            # A proxy or load balancer answered: Meta may have accepted the message.
            self.counts["uncertain"] += 1
            return MaybeSent(described, code=str(status))
        if code == WINDOW_CLOSED_CODE:
            return _WindowClosed(described)
        if code in NUMBER_THROTTLE_CODES or status == 429:
            pause = self.pause.trip(_retry_after(exc.raw_response), sent_in=episode)
            self.counts["throttled"] += 1
            log.warning("whatsapp throttled (%s): pausing sends for %.1fs", code, pause)
            return NotSent(described, code=str(code), retry_after=pause)
        if code == PAIR_THROTTLE_CODE:
            self.counts["throttled"] += 1
            return NotSent(described, code=str(code), retry_after=PAIR_RETRY_AFTER)
        if status >= 500 or code in TRANSIENT_CODES or exc.is_transient:
            self.counts["transient"] += 1
            return NotSent(described, code=str(code))
        self.counts["failed"] += 1
        return NotSent(described, code=str(code), is_transient=False)


class _WindowClosed(NotSent):
    """Graph refused a free-form message: the 24-hour window is closed (131047)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=str(WINDOW_CLOSED_CODE), is_transient=False)


def _rows(choices: tuple[Choice, ...]) -> list[SectionRow]:
    return [
        SectionRow(title=c.title, callback_data=c.id, description=c.description) for c in choices
    ]


def _has_error_body(response: httpx.Response | None) -> bool:
    """True when the answer is a Graph error object (so Graph itself refused the message)."""
    if response is None:
        return False
    try:
        body = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


def _retry_after(response: httpx.Response | None) -> float:
    if response is None:
        return 0.0
    try:
        return max(0.0, float(response.headers.get("Retry-After", "0")))
    except ValueError:
        return 0.0
