"""A real SMTP server on 127.0.0.1 (aiosmtpd), port chosen by the OS, scriptable per test.

It runs on the test's own event loop (``loop.create_server`` with aiosmtpd's protocol)
rather than in aiosmtpd's ``Controller`` thread: no port-0 self-connect gotcha, and the
hooks can use the test's asyncio events directly. It records every accepted message and can
be told to answer the recipient or the data with any reply ("550 5.1.1 User unknown",
"450 4.2.1 Try later"), to refuse the greeting (421), or to never answer DATA (a timeout
after the message was handed over).

    async with FakeSmtp() as smtp:
        smtp.rcpt_replies["nobody@acme.com"] = "550 5.1.1 User unknown"
        url = smtp.url                        # smtp://user:secret@127.0.0.1:<port>
        [got] = await smtp.wait_messages(1)   # got.message: EmailMessage
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Self

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

USER, PASSWORD = "user", "secret"


@dataclass
class Received:
    """One accepted message: the envelope and the parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


@dataclass
class FakeSmtp:
    """The server. Set the reply attributes before the client connects."""

    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_reply: str | None = None
    greeting_reply: str | None = None
    hang_data: bool = False
    received: list[Received] = field(default_factory=list)
    rcpt_attempts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._release = asyncio.Event()
        self.data_started = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        """``LEADBOT_SMTP_URL`` for this server."""
        return f"smtp://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release.set()  # let a hanging DATA finish
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # let the protocols see the close

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname="fake-smtp.test",
            auth_require_tls=False,
            authenticator=_authenticate,
        )

    async def wait_messages(self, count: int = 1, timeout: float = 5.0) -> list[Received]:
        """Wait until ``count`` messages were accepted; return them (in arrival order)."""
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.received) >= count), timeout
            )
        return list(self.received)

    async def _accept(self, envelope: Envelope) -> None:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        item = Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed, raw)
        async with self._arrived:
            self.received.append(item)
            self._arrived.notify_all()


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


class _Handler:
    def __init__(self, fake: FakeSmtp) -> None:
        self.fake = fake

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        if self.fake.greeting_reply:
            return [self.fake.greeting_reply]
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.fake.rcpt_attempts.append(address)
        reply = self.fake.rcpt_replies.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.fake.data_started.set()
        if self.fake.hang_data:
            await self.fake._release.wait()
            return "451 4.3.0 gave up"
        if self.fake.data_reply:
            return self.fake.data_reply
        await self.fake._accept(envelope)
        return "250 2.0.0 Queued"
