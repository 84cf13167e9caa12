"""One SMTP submission with aiosmtplib, its failures sorted by what they mean for a retry.

``smtp://user:pass@host:587`` upgrades with STARTTLS when the server offers it;
``smtps://user:pass@host:465`` is TLS from the first byte. The conversation is driven step
by step (connect, MAIL, RCPT, DATA) because the step that failed decides the outcome:

- anything before DATA (refused connection, timeout, 4xx) → :class:`SmtpTransient`: surely
  not sent, retry later;
- a 5xx to RCPT → :class:`SmtpRecipientRefused`: the address is bad, never retry;
- other 5xx (auth, sender, content) → :class:`SmtpPermanent`;
- a timeout or disconnect during DATA → :class:`SmtpUnknown`: the server may have queued it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import flatten_message

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


class SmtpFailure(Exception):
    """The message was not (surely) accepted. ``code`` is the SMTP reply code, 0 if none."""

    def __init__(self, message: str, *, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class SmtpTransient(SmtpFailure):
    """Surely not sent; trying again later may work."""


class SmtpPermanent(SmtpFailure):
    """Surely not sent; trying again will fail the same way."""


class SmtpRecipientRefused(SmtpPermanent):
    """The server refused the recipient address for good (550 5.1.1 user unknown, …)."""


class SmtpUnknown(SmtpFailure):
    """The message may or may not have been accepted (DATA was sent, no answer came)."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to submit mail, parsed from ``LEADBOT_SMTP_URL``."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 30.0) -> SmtpConfig:
        """Parse ``smtp://[user:pass@]host[:port]`` or ``smtps://…`` (ValueError if not)."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("LEADBOT_SMTP_URL must look like smtp://user:pass@host:587")
        use_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (465 if use_tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            timeout=timeout,
        )


def is_hard_bounce(code: int, text: str) -> bool:
    """Whether a 5xx refusal of a recipient means the address itself is bad.

    Enhanced codes decide when present: 5.1.x (bad address) and 5.2.1 (mailbox disabled)
    are; 5.7.x (policy: relaying denied, our IP blocked) is about us, not them.
    """
    if not 500 <= code < 600:
        return False
    enhanced = _ENHANCED.search(text)
    if enhanced:
        subject, detail = enhanced.group(2), enhanced.group(3)
        return subject == "1" or (subject == "2" and detail == "1")
    return code in (550, 551, 553)


def _refusal(exc: aiosmtplib.SMTPResponseException, step: str) -> SmtpFailure:
    detail = f"{step}: {exc.code} {exc.message}".strip()
    if 400 <= exc.code < 500:
        return SmtpTransient(detail, code=exc.code)
    return SmtpPermanent(detail, code=exc.code)


async def submit(config: SmtpConfig, message: EmailMessage, *, sender: str, recipient: str,
                 local_hostname: str) -> None:  # fmt: skip
    """Hand ``message`` to the server for ``recipient``; raise an :class:`SmtpFailure`."""
    client = aiosmtplib.SMTP(
        hostname=config.hostname,
        port=config.port,
        username=config.username,
        password=config.password,
        use_tls=config.use_tls,
        # None: upgrade with STARTTLS when offered. Not with implicit TLS (already encrypted).
        start_tls=False if config.use_tls else None,
        timeout=config.timeout,
        # Never the machine's FQDN: resolving it may block, and it leaks internal names.
        local_hostname=local_hostname,
    )
    try:
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise SmtpPermanent(f"login: {exc.code} {exc.message}", code=exc.code) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, "connect") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused, timeout, TLS, DNS
            raise SmtpTransient(f"connect: {exc}") from exc
        try:
            await client.mail(sender)
            await client.rcpt(recipient)
        except aiosmtplib.SMTPRecipientRefused as exc:
            if is_hard_bounce(exc.code, exc.message):
                detail = f"{exc.code} {exc.message}".strip()
                raise SmtpRecipientRefused(detail, code=exc.code) from exc
            raise _refusal(exc, "RCPT") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _refusal(exc, "MAIL") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # nothing was handed over yet
            raise SmtpTransient(f"before DATA: {exc}") from exc
        try:
            await client.data(flatten_message(message, cte_type="7bit"))
        except aiosmtplib.SMTPResponseException as exc:  # an explicit answer: not queued
            raise _refusal(exc, "DATA") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SmtpUnknown(f"no answer to DATA: {exc}") from exc
        # The message was accepted (250 to DATA); a failing QUIT changes nothing.
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    finally:
        client.close()
