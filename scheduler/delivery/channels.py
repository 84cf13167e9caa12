"""How the outbox reaches people: the channel protocol and what a send can end in.

Defined here, low, because the scheduler sends through channels that ``bot`` implements
(WhatsApp via pywa, email via aiosmtplib, the stored channel) and wires in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from dialogs.errors import LeadbotError


class DeliveryError(LeadbotError):
    """A channel could not deliver. ``code`` is the provider's error code when it gave one."""

    def __init__(self, message: str, *, code: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class NotSent(DeliveryError):
    """The provider surely did not accept the message. ``is_transient`` says whether trying
    again later may succeed (throttling, 5xx, connection refused). ``attempted=False`` means
    the channel held the message back itself (a daily cap, a rate limit) without contacting
    the provider: the row is deferred by ``retry_after`` and the try does not count."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        is_transient: bool = True,
        retry_after: float | None = None,
        attempted: bool = True,
    ) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.is_transient = is_transient
        self.attempted = attempted


class MaybeSent(DeliveryError):
    """The outcome is unknown (e.g. a timeout after the request was written)."""


class PayloadError(DeliveryError, ValueError):
    """An outbox payload the channel cannot turn into a message (a missing text, a field of
    the wrong type, a WhatsApp limit exceeded): sending it again fails the same way. Each
    channel raises its own subclass; the channel reports it as a permanent :class:`NotSent`."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a channel returns for an accepted message."""

    external_id: str | None


class Channel(Protocol):
    """A way to reach a person. ``payload`` is the outbox row's payload (channel-specific,
    always with a human-readable ``text``)."""

    name: str

    async def send(self, recipient: str, payload: Mapping[str, Any]) -> Receipt:
        """Send one message; raise :class:`NotSent` or :class:`MaybeSent` when not accepted."""
        ...


SendOutcome = Receipt | BaseException


@dataclass(frozen=True, slots=True)
class BatchHooks:
    """What a batch channel reports about each item as it goes, by the item's index.

    ``start(i)`` is awaited just before item ``i``'s own request leaves; when it returns
    False the item must not be sent (it is no longer ours). ``done(i, outcome)`` is awaited as
    soon as item ``i``'s outcome is known (also for items refused or held back before any
    request), so one slow item delays no other's recording."""

    start: Callable[[int], Awaitable[bool]]
    done: Callable[[int, SendOutcome], Awaitable[None]]


class BatchChannel(Channel, Protocol):
    """A channel that sends many messages at once (shared checks, pooled connections).

    One that sets ``reports_each = True`` accepts ``hooks`` (:class:`BatchHooks`); without,
    the outbox marks the whole batch started before it and records it after."""

    async def send_batch(
        self, items: Sequence[tuple[str, Mapping[str, Any]]], *, concurrency: int
    ) -> list[SendOutcome]:
        """Send each ``(recipient, payload)``, at most ``concurrency`` at a time; return one
        outcome per item, in order: a :class:`Receipt` or the exception ``send`` would raise."""
        ...
