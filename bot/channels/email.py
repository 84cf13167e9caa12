"""The ``email`` channel: outbox rows out through SMTP, after the deliverability checks.

Payload schema: see :mod:`bot.channels.email_message` (``subject``, ``text``, ``html``?,
``to_name``?, ``lead_token``?, ``thread``?, ``unsubscribe``?). Every send:

1. refuses a suppressed address (unsubscribed, bounced) → permanent ``NotSent``;
2. holds back when the mailbox's daily cap (``LEADBOT_EMAIL_DAILY_CAP``, sent email rows
   of the current UTC day) or the recipient domain's per-minute throttle
   (``LEADBOT_EMAIL_DOMAIN_PER_MINUTE``) is reached → transient ``NotSent`` with
   ``retry_after``, so the outbox tries again when there is room;
3. composes the message with our own Message-ID (returned as the receipt's id and stored on
   the outbox row and the lead's message, so replies can be threaded back to the lead), the
   per-lead ``Reply-To: reply+<token>@…`` and the RFC 8058 one-click unsubscribe headers;
4. submits it over a pooled connection (:class:`bot.channels.smtp.SmtpPool`); an address
   refused for good is suppressed and noted on the lead.

The outbox hands over whole batches (:meth:`EmailChannel.send_batch`): the checks cost a
handful of queries per batch, not per email. The counts come from the ``sent`` email rows at
the start of the batch, and each email the batch lets through counts against the cap and its
domain at once, so one batch never overshoots. Batches running at the same time (two
processes) each see only what was recorded before they started, as single sends always did.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.channels.email_message import EmailPayloadError, EmailSender, OutgoingEmail, compose
from bot.channels.smtp import (
    SmtpConfig,
    SmtpPermanent,
    SmtpPool,
    SmtpRecipientRefused,
    SmtpTransient,
    SmtpUnknown,
)
from bot.email.actions import hard_bounce
from bot.email.unsubscribe import UNSUBSCRIBE_PURPOSE
from bot.http.signing import Signer
from bot.settings import Settings
from scheduler.delivery.outbox import BatchHooks, MaybeSent, NotSent, Receipt, SendOutcome
from scheduler.store import Session, Sessions
from scheduler.store import leads as lead_store
from scheduler.store import outbox as outbox_store
from scheduler.store.models import utcnow
from scheduler.store.suppressions import normalize_address, suppression_reasons

log = logging.getLogger("leadbot.email")

THROTTLE_WINDOW = timedelta(minutes=1)


def unsubscribe_url(public_url: str, signer: Signer, lead_id: int | None, address: str) -> str:
    """The signed one-click link for ``address`` (and its lead)."""
    token = signer.sign(
        UNSUBSCRIBE_PURPOSE, {"lead": lead_id, "email": normalize_address(address)}
    )
    return f"{public_url.rstrip('/')}/unsubscribe/{token}"


class EmailChannel:
    """A :class:`scheduler.delivery.outbox.Channel` sending through one SMTP mailbox."""

    name = "email"

    def __init__(
        self,
        smtp: SmtpConfig,
        sessions: Sessions,
        *,
        sender: EmailSender,
        signer: Signer,
        public_url: str,
        daily_cap: int,
        domain_per_minute: int,
        clock: Callable[[], datetime] = utcnow,
        connections: int = 4,
        keepalive: float = 0.0,
    ) -> None:
        self.smtp = smtp
        self.sessions = sessions
        self.sender = sender
        self.signer = signer
        # One-click needs an HTTPS link; without a public https URL only mailto is offered.
        self.public_url = public_url if public_url.startswith("https://") else ""
        self.daily_cap = daily_cap
        self.domain_per_minute = domain_per_minute
        self.clock = clock
        # keepalive=0: connections live as long as a burst of sends (a batch), then close.
        self.pool = SmtpPool(
            smtp, local_hostname=sender.domain, size=connections, keepalive=keepalive
        )

    @classmethod
    def from_settings(cls, settings: Settings, sessions: Sessions) -> EmailChannel:
        """The channel ``settings`` describe (``LEADBOT_SMTP_URL`` must be set)."""
        return cls(
            SmtpConfig.from_url(
                settings.smtp_url.get_secret_value(), timeout=settings.smtp_timeout
            ),
            sessions,
            sender=EmailSender.parse(settings.email_from),
            signer=Signer(settings.secret_key),
            public_url=settings.public_url,
            daily_cap=settings.email_daily_cap,
            domain_per_minute=settings.email_domain_per_minute,
            connections=settings.smtp_connections,
            keepalive=settings.smtp_keepalive,
        )

    async def aclose(self) -> None:
        """Close the pooled SMTP connections (the app calls this on shutdown)."""
        await self.pool.aclose()

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Check, compose and submit one email; see the module docstring for the outcomes."""
        [outcome] = await self.send_batch([(recipient, payload)], concurrency=1)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    reports_each = True  # send_batch takes BatchHooks: each email is recorded as it goes

    async def send_batch(
        self,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        concurrency: int,
        hooks: BatchHooks | None = None,
    ) -> list[SendOutcome]:
        """Check, compose and submit many emails (one outcome each, in order): the checks
        in one read for the whole batch, the submissions concurrently over the pool. With
        ``hooks`` each submission is announced just before it starts (and skipped when the
        outbox says the row is no longer ours) and each outcome reported as it is known."""
        now = self.clock()
        addresses = [normalize_address(recipient) for recipient, _ in items]
        async with self.sessions() as session:
            state = await self._load(session, items, addresses, now)
        outcomes: list[SendOutcome] = []
        ready: list[tuple[int, str, OutgoingEmail]] = []
        refused: list[int] = []
        for index, ((_, payload), address) in enumerate(zip(items, addresses, strict=True)):
            try:
                state.admit(address, now)
                ready.append((index, address, self._compose(payload, address, state, now)))
                outcomes.append(Receipt(external_id=None))  # replaced by the submission's
            except NotSent as exc:
                outcomes.append(exc)
                refused.append(index)
        limit = asyncio.Semaphore(max(1, concurrency))
        bounced: list[tuple[str, str]] = []

        async def submit(index: int, address: str, outgoing: OutgoingEmail) -> None:
            async with limit:
                if hooks is not None and not await hooks.start(index):
                    return  # no longer ours: someone else sends it
                try:
                    outcomes[index] = await self._submit(address, outgoing, bounced)
                except Exception as exc:  # unknown whether it went out: this one only
                    outcomes[index] = exc
            if hooks is not None:
                await hooks.done(index, outcomes[index])

        reports = [hooks.done(i, outcomes[i]) for i in refused] if hooks is not None else []
        async with self.pool.burst():  # one burst: connections are reused across the batch
            await asyncio.gather(*(submit(*entry) for entry in ready), *reports)
        if bounced:
            try:
                async with self.sessions.begin() as session:
                    for address, detail in bounced:
                        await hard_bounce(session, address, detail=detail, now=now)
            except Exception:  # the outcomes stand; the next bounce will suppress it
                log.exception("recording %d hard bounces failed", len(bounced))
        return outcomes

    # -- steps ---------------------------------------------------------------------------

    async def _load(
        self,
        session: Session,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        addresses: list[str],
        now: datetime,
    ) -> _BatchState:
        """Everything the batch's checks need, in a few queries."""
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        state = _BatchState(
            daily_cap=self.daily_cap, domain_per_minute=self.domain_per_minute, midnight=midnight
        )
        unique = sorted(set(addresses))
        state.suppressed.update(await suppression_reasons(session, unique))
        tokens = sorted({t for _, p in items if isinstance(t := p.get("lead_token"), str) and t})
        named = await lead_store.ids_by_tokens(session, tokens)
        state.by_token.update({token: (lead_id, token) for token, lead_id in named.items()})
        for token in tokens:
            if token not in state.by_token:
                log.warning("email payload names unknown lead token %r", token)
        # Lead emails are stored normalized (lower-case): the unique index answers this.
        for address, lead_id, token in await lead_store.by_emails(session, unique):
            state.by_address.setdefault(address, (lead_id, token))
        state.sent_today = await outbox_store.sent_count_since(session, "email", midnight)
        domains = {_domain(a) for a in unique}
        state.recent.update(
            await outbox_store.recent_by_domain(session, "email", domains, now - THROTTLE_WINDOW)
        )
        return state

    def _compose(
        self, payload: Mapping[str, Any], address: str, state: _BatchState, now: datetime
    ) -> OutgoingEmail:
        lead = state.lead(payload, address)
        wants_unsubscribe = bool(payload.get("unsubscribe", lead is not None))
        link = None
        if wants_unsubscribe and self.public_url:
            link = unsubscribe_url(
                self.public_url, self.signer, lead[0] if lead else None, address
            )
        try:
            return compose(
                self.sender,
                address,
                payload,
                now=now,
                lead_token=lead[1] if lead else None,
                unsubscribe=wants_unsubscribe,
                unsubscribe_url=link,
            )
        except EmailPayloadError as exc:
            raise NotSent(str(exc), code="bad_payload", is_transient=False) from exc

    async def _submit(
        self, address: str, outgoing: OutgoingEmail, bounced: list[tuple[str, str]]
    ) -> SendOutcome:
        try:
            await self.pool.submit(outgoing.message, sender=self.sender.address, recipient=address)
        except SmtpRecipientRefused as exc:
            bounced.append((address, str(exc)))
            return _not_sent(exc, is_transient=False)
        except SmtpPermanent as exc:
            return _not_sent(exc, is_transient=False)
        except SmtpTransient as exc:
            return _not_sent(exc, is_transient=True)
        except SmtpUnknown as exc:
            error = MaybeSent(str(exc), code="smtp_timeout")
            error.__cause__ = exc
            return error
        return Receipt(external_id=outgoing.message_id)


def _not_sent(exc: Exception, *, is_transient: bool) -> NotSent:
    code = getattr(exc, "code", 0)
    error = NotSent(str(exc), code=f"smtp_{code}", is_transient=is_transient)
    error.__cause__ = exc
    return error


Known = tuple[int, str]  # a lead's id and token


@dataclass(slots=True)
class _BatchState:
    """What one batch's checks read, updated as the batch admits emails."""

    daily_cap: int
    domain_per_minute: int
    midnight: datetime
    suppressed: dict[str, str] = field(default_factory=dict)
    by_token: dict[str, Known] = field(default_factory=dict)
    by_address: dict[str, Known] = field(default_factory=dict)
    sent_today: int = 0
    recent: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)

    def admit(self, address: str, now: datetime) -> None:
        """Count one email to ``address`` against the cap and its domain, or raise the
        :class:`NotSent` that holds it back (or refuses it, when suppressed)."""
        reason = self.suppressed.get(address)
        if reason is not None:
            raise NotSent(
                f"{address} is suppressed ({reason})", code="suppressed", is_transient=False
            )
        if self.sent_today >= self.daily_cap:
            retry = (self.midnight + timedelta(days=1) - now).total_seconds()
            raise NotSent(
                f"daily cap of {self.daily_cap} emails reached",
                code="daily_cap",
                retry_after=retry,
                attempted=False,
            )
        domain = _domain(address)
        count, oldest = self.recent.get(domain, (0, None))
        if count >= self.domain_per_minute:
            # The oldest send of the window frees a slot; one admitted by this batch (not
            # yet stored) frees one a full window from now.
            frees = (oldest + THROTTLE_WINDOW - now).total_seconds() if oldest else 60.0
            raise NotSent(
                f"{self.domain_per_minute} emails to {domain} in the last minute",
                code="domain_throttle",
                retry_after=max(1.0, frees),
                attempted=False,
            )
        self.sent_today += 1
        self.recent[domain] = (count + 1, oldest or now)

    def lead(self, payload: Mapping[str, Any], address: str) -> Known | None:
        """The lead this email goes to: by the payload's token, else by address."""
        token = payload.get("lead_token")
        if isinstance(token, str) and token in self.by_token:
            return self.by_token[token]
        return self.by_address.get(address)


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1]
