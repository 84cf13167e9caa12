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
4. submits it; an address refused for good is suppressed and noted on the lead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.email_message import PayloadError, Sender, compose
from bot.channels.smtp import (
    SmtpConfig,
    SmtpPermanent,
    SmtpRecipientRefused,
    SmtpTransient,
    SmtpUnknown,
    submit,
)
from bot.email_actions import hard_bounce
from bot.settings import Settings
from bot.signing import Signer
from scheduler.models import Lead, OutboxItem, OutboxState, utcnow
from scheduler.outbox import MaybeSent, NotSent, Receipt
from scheduler.suppressions import find_suppression, normalize_address

log = logging.getLogger("leadbot.email")

UNSUBSCRIBE_PURPOSE = "unsubscribe"
THROTTLE_WINDOW = timedelta(minutes=1)


def unsubscribe_url(public_url: str, signer: Signer, lead_id: int | None, address: str) -> str:
    """The signed one-click link for ``address`` (and its lead)."""
    token = signer.sign(
        UNSUBSCRIBE_PURPOSE, {"lead": lead_id, "email": normalize_address(address)}
    )
    return f"{public_url.rstrip('/')}/unsubscribe/{token}"


class EmailChannel:
    """A :class:`scheduler.outbox.Channel` sending through one SMTP mailbox."""

    name = "email"

    def __init__(
        self,
        smtp: SmtpConfig,
        sessions: async_sessionmaker[AsyncSession],
        *,
        sender: Sender,
        signer: Signer,
        public_url: str,
        daily_cap: int,
        domain_per_minute: int,
        clock: Callable[[], datetime] = utcnow,
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

    @classmethod
    def from_settings(
        cls, settings: Settings, sessions: async_sessionmaker[AsyncSession]
    ) -> EmailChannel:
        """The channel ``settings`` describe (``LEADBOT_SMTP_URL`` must be set)."""
        return cls(
            SmtpConfig.from_url(
                settings.smtp_url.get_secret_value(), timeout=settings.smtp_timeout
            ),
            sessions,
            sender=Sender.parse(settings.email_from),
            signer=Signer(settings.secret_key),
            public_url=settings.public_url,
            daily_cap=settings.email_daily_cap,
            domain_per_minute=settings.email_domain_per_minute,
        )

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Check, compose and submit one email; see the module docstring for the outcomes."""
        now = self.clock()
        address = normalize_address(recipient)
        async with self.sessions() as session:
            await self._check_allowed(session, address, now)
            lead = await self._lead(session, payload, address)
        wants_unsubscribe = bool(payload.get("unsubscribe", lead is not None))
        link = None
        if wants_unsubscribe and self.public_url:
            link = unsubscribe_url(
                self.public_url, self.signer, lead.id if lead else None, address
            )
        try:
            outgoing = compose(
                self.sender,
                address,
                payload,
                now=now,
                lead_token=lead.token if lead else None,
                unsubscribe=wants_unsubscribe,
                unsubscribe_url=link,
            )
        except PayloadError as exc:
            raise NotSent(str(exc), code="bad_payload", is_transient=False) from exc
        try:
            await submit(
                self.smtp,
                outgoing.message,
                sender=self.sender.address,
                recipient=address,
                local_hostname=self.sender.domain,
            )
        except SmtpRecipientRefused as exc:
            async with self.sessions.begin() as session:
                await hard_bounce(session, address, detail=str(exc), now=now)
            raise NotSent(str(exc), code=f"smtp_{exc.code}", is_transient=False) from exc
        except SmtpPermanent as exc:
            raise NotSent(str(exc), code=f"smtp_{exc.code}", is_transient=False) from exc
        except SmtpTransient as exc:
            raise NotSent(str(exc), code=f"smtp_{exc.code}", is_transient=True) from exc
        except SmtpUnknown as exc:
            raise MaybeSent(str(exc), code="smtp_timeout") from exc
        return Receipt(external_id=outgoing.message_id)

    async def _check_allowed(self, session: AsyncSession, address: str, now: datetime) -> None:
        suppression = await find_suppression(session, address)
        if suppression is not None:
            raise NotSent(
                f"{address} is suppressed ({suppression.reason})",
                code="suppressed",
                is_transient=False,
            )
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        sent_today = await session.scalar(
            select(func.count()).where(*_sent_email(), OutboxItem.updated_at >= midnight)
        )
        if (sent_today or 0) >= self.daily_cap:
            retry = (midnight + timedelta(days=1) - now).total_seconds()
            raise NotSent(
                f"daily cap of {self.daily_cap} emails reached",
                code="daily_cap",
                retry_after=retry,
                attempted=False,
            )
        domain = address.rsplit("@", 1)[-1]
        recent = await session.execute(
            select(func.count(), func.min(OutboxItem.updated_at)).where(
                *_sent_email(),
                OutboxItem.updated_at > now - THROTTLE_WINDOW,
                func.lower(OutboxItem.recipient).endswith(f"@{domain}", autoescape=True),
            )
        )
        count, oldest = recent.one()
        if count >= self.domain_per_minute:
            retry = max(1.0, (oldest + THROTTLE_WINDOW - now).total_seconds())
            raise NotSent(
                f"{self.domain_per_minute} emails to {domain} in the last minute",
                code="domain_throttle",
                retry_after=retry,
                attempted=False,
            )

    async def _lead(
        self, session: AsyncSession, payload: Mapping[str, Any], address: str
    ) -> Lead | None:
        """The lead this email goes to: by the payload's token, else by address."""
        token = payload.get("lead_token")
        if isinstance(token, str) and token:
            lead = await session.scalar(select(Lead).where(Lead.token == token))
            if lead is not None:
                return lead
            log.warning("email payload names unknown lead token %r", token)
        return await session.scalar(select(Lead).where(func.lower(Lead.email) == address))


def _sent_email() -> tuple[Any, ...]:
    return (OutboxItem.channel == "email", OutboxItem.state == OutboxState.SENT.value)
