"""SMTP submission with aiosmtplib over pooled connections, failures sorted by what they mean.

``smtp://user:pass@host:587`` upgrades with STARTTLS when the server offers it;
``smtps://user:pass@host:465`` is TLS from the first byte. The conversation is driven step
by step (connect, MAIL, RCPT, DATA) because the step that failed decides the outcome:

- anything before DATA (refused connection, timeout, 4xx) → :class:`SmtpTransient`: surely
  not sent, retry later;
- a 5xx to RCPT → :class:`SmtpRecipientRefused`: the address is bad, never retry;
- other 5xx (auth, sender, content) → :class:`SmtpPermanent`;
- a timeout or disconnect during DATA → :class:`SmtpUnknown`: the server may have queued it.

:class:`SmtpPool` keeps a few logged-in connections open between messages (a new connection
with STARTTLS and AUTH costs several round trips per email otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.policy import Compat32
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
from aiosmtplib.email import flatten_message

from dialogs.errors import LeadbotError

_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


class SmtpFailure(LeadbotError):
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


class _Wire(Compat32):
    """compat32 output with CRLF and 7-bit bodies, and a fast path for ASCII headers: the
    stock fold runs every header through ``email.header.Header`` (several times the cost:
    ``bench/README.md``). ASCII values are folded here at spaces (RFC 5322 folding
    whitespace)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if not isinstance(value, str) or not value.isascii() or "\r" in value or "\n" in value:
            return super().fold_binary(name, value)
        line, lines = f"{name}:", []
        for word in value.split(" "):
            if len(line) + 1 + len(word) > 78 and line.strip() and line != f"{name}:":
                lines.append(line)
                line = ""
            line += " " + word
        lines.append(line)
        return (self.linesep.join(lines) + self.linesep).encode("ascii")


_WIRE = _Wire(linesep="\r\n", cte_type="7bit")


def to_wire(message: Message) -> bytes:
    """The bytes handed to DATA (7-bit clean, CRLF line ends)."""
    if isinstance(message, EmailMessage):  # the modern policy folds its own headers
        return flatten_message(message, cte_type="7bit")
    with io.BytesIO() as out:
        BytesGenerator(out, policy=_WIRE).flatten(message)
        return out.getvalue()


def _client(config: SmtpConfig, local_hostname: str) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
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


async def _connect(client: aiosmtplib.SMTP) -> None:
    try:
        await client.connect()
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise SmtpPermanent(f"login: {exc.code} {exc.message}", code=exc.code) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _refusal(exc, "connect") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:  # refused, timeout, TLS, DNS
        raise SmtpTransient(f"connect: {exc}") from exc


class _Dropped(LeadbotError):
    """A reused connection turned out dead before MAIL was answered: nothing was handed over."""


async def _transaction(
    client: aiosmtplib.SMTP, message: Message, *, sender: str, recipient: str, reused: bool
) -> None:
    """MAIL, RCPT, DATA on a logged-in connection; raise an :class:`SmtpFailure`."""
    try:
        await client.mail(sender)
    except aiosmtplib.SMTPServerDisconnected as exc:
        if reused:  # the server closed the idle connection: reconnect and try again
            raise _Dropped(str(exc)) from exc
        raise SmtpTransient(f"before DATA: {exc}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if reused and exc.code == 421:  # "closing channel" on a connection kept open
            raise _Dropped(str(exc)) from exc
        raise _refusal(exc, "MAIL") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        if reused:
            raise _Dropped(str(exc)) from exc
        raise SmtpTransient(f"before DATA: {exc}") from exc
    try:
        await client.rcpt(recipient)
    except aiosmtplib.SMTPRecipientRefused as exc:
        if is_hard_bounce(exc.code, exc.message):
            detail = f"{exc.code} {exc.message}".strip()
            raise SmtpRecipientRefused(detail, code=exc.code) from exc
        raise _refusal(exc, "RCPT") from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise _refusal(exc, "RCPT") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:  # nothing was handed over yet
        raise SmtpTransient(f"before DATA: {exc}") from exc
    try:
        await client.data(to_wire(message))
    except aiosmtplib.SMTPResponseException as exc:  # an explicit answer: not queued
        raise _refusal(exc, "DATA") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise SmtpUnknown(f"no answer to DATA: {exc}") from exc


class SmtpPool:
    """Up to ``size`` logged-in connections to one server, reused from message to message.

    A connection goes back to the pool only after a clean transaction (250 to DATA); after
    any failure it is closed, so no half-finished transaction is ever reused. A reused
    connection found dead before MAIL was accepted (the server dropped it while idle) is
    replaced by a fresh one and the message tried once more: nothing was handed over.

    Idle connections are closed ``keepalive`` seconds after the pool last went idle (at once
    with ``keepalive=0``, which makes the pool live only as long as a burst of sends), and
    all of them by :meth:`aclose`.
    """

    def __init__(
        self, config: SmtpConfig, *, local_hostname: str, size: int = 4, keepalive: float = 0.0
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.config = config
        self.local_hostname = local_hostname
        self.size = size
        self.keepalive = keepalive
        self._idle: list[aiosmtplib.SMTP] = []
        self._slots = asyncio.Semaphore(size)
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.connects = 0  # connections opened so far (for tests and benchmarks)

    async def submit(self, message: Message, *, sender: str, recipient: str) -> None:
        """Hand ``message`` to the server for ``recipient``; raise an :class:`SmtpFailure`."""
        # Sends waiting for a slot count as busy too: the pool is idle only when none is left.
        async with self.burst(), self._slots:
            await self._submit(message, sender=sender, recipient=recipient)

    @contextlib.asynccontextmanager
    async def burst(self) -> AsyncIterator[None]:
        """Count the block as busy: idle connections stay open between its sends (a batch
        whose emails start one by one, each after the outbox marked it started)."""
        self._busy += 1
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._went_idle()

    async def _submit(self, message: Message, *, sender: str, recipient: str) -> None:
        while True:
            reused = bool(self._idle)
            client = self._idle.pop() if reused else await self._open()
            try:
                await _transaction(
                    client, message, sender=sender, recipient=recipient, reused=reused
                )
            except _Dropped:
                client.close()
                continue  # a fresh (or another idle) connection; this loop ends once not reused
            except BaseException:
                client.close()
                raise
            if self._closed:
                client.close()
            else:
                self._idle.append(client)
            return

    async def _open(self) -> aiosmtplib.SMTP:
        client = _client(self.config, self.local_hostname)
        self.connects += 1
        try:
            await _connect(client)
        except BaseException:
            client.close()
            raise
        return client

    def _went_idle(self) -> None:
        if self.keepalive <= 0:
            self._close_idle()
        else:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.keepalive, self._close_idle)

    def _close_idle(self) -> None:
        self._timer = None
        idle, self._idle = self._idle, []
        for client in idle:
            # No QUIT: it would need awaiting; closing the socket between transactions is
            # harmless to the server (nothing is half-sent).
            client.close()

    async def aclose(self) -> None:
        """Close every idle connection (sends in flight keep theirs until they finish)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
            client.close()


async def submit(
    config: SmtpConfig, message: Message, *, sender: str, recipient: str, local_hostname: str
) -> None:
    """One message over a connection of its own (opened and closed here)."""
    pool = SmtpPool(config, local_hostname=local_hostname, size=1)
    await pool.submit(message, sender=sender, recipient=recipient)
