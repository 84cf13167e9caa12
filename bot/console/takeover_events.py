"""The take-over's live streams (server-sent events): a conversation's new messages and
delivery statuses, and the queue's changes, on every open console.

Every process polls the store (each stream every :data:`POLL_SECONDS`, with a short-lived
session) instead of listening to an in-process bus: a message stored by another worker,
or a status recorded by the scheduler process, reaches every console alike.

- ``GET /console/takeover/{lead}/events``: ``message`` events (a rendered ``<li>`` of each
  new message, in message id order) and ``status`` events (a rendered status of an outbox
  row whose state or delivery status changed). Each event's id is the stream's position
  (:class:`~bot.console.takeover_feed.FeedPosition`): a browser reconnecting with
  ``Last-Event-ID`` gets exactly what it missed. The page passes its own position in
  ``?from=`` for the first connection.
- ``GET /console/takeover/events``: a ``queue`` event whenever the set of conversations
  waiting or taken changes (its id is a digest of that set); the page fetches the queue
  again.

Fragments are rendered by Jinja with autoescape, like the pages. A keep-alive comment goes
out every :data:`KEEPALIVE_SECONDS`. A stream ends after :data:`STREAM_SECONDS` (the
browser reconnects, through the session check again), when the browser goes away, or at
once when the app shuts down (:func:`setup` registers that; without it a stream ends at
the latest when its time is up).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from bot.console.takeover_feed import FeedPosition, delivery_label
from bot.http.appkeys import SESSIONS
from scheduler.store import Sessions, conversation_feed
from scheduler.store import takeover as takeover_store
from scheduler.store.conversation_feed import FeedDelivery, FeedMessage
from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.console")

POLL_SECONDS = 0.75
KEEPALIVE_SECONDS = 15.0
STREAM_SECONDS = 300.0
RETRY_MS = 2000  # how soon a browser reconnects after a stream ended
BATCH = 100  # messages (and status changes) read per poll


class LiveStreams:
    """The open streams of one app, so that shutting down ends them at once."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self._open: weakref.WeakSet[EventSourceResponse] = weakref.WeakSet()

    def add(self, stream: EventSourceResponse) -> None:
        """Track ``stream`` until it ends."""
        self._open.add(stream)

    def discard(self, stream: EventSourceResponse) -> None:
        """``stream`` ended."""
        self._open.discard(stream)

    def __len__(self) -> int:
        return len(self._open)

    async def close(self, _app: web.Application | None = None) -> None:
        """End every stream (``app.on_shutdown``: before aiohttp waits for handlers)."""
        self.closing.set()
        for stream in list(self._open):
            if stream.prepared:
                stream.stop_streaming()


STREAMS = web.AppKey("takeover_streams", LiveStreams)


def setup(app: web.Application) -> None:
    """Track the app's live streams and end them when it shuts down."""
    if STREAMS not in app:
        streams = LiveStreams()
        app[STREAMS] = streams
        app.on_shutdown.append(streams.close)


def _streams(request: web.Request) -> LiveStreams:
    return request.app[STREAMS]


Poll = Callable[[EventSourceResponse], Awaitable[None]]


async def _run(request: web.Request, first: Poll, poll: Poll) -> EventSourceResponse:
    """Stream until the time is up, the browser leaves or the app shuts down."""
    streams = _streams(request)
    loop = asyncio.get_running_loop()
    async with sse_response(request, ping_interval=KEEPALIVE_SECONDS) as stream:
        streams.add(stream)
        try:
            ends = loop.time() + STREAM_SECONDS
            await first(stream)
            while _open(request, stream, streams) and loop.time() < ends:
                await poll(stream)
                if await _closing(streams, POLL_SECONDS):
                    break
        except (ConnectionResetError, TimeoutError):
            pass  # the browser went away (or stalled): it reconnects if it is still there
        finally:
            streams.discard(stream)
    return stream


def _open(request: web.Request, stream: EventSourceResponse, streams: LiveStreams) -> bool:
    transport = request.transport
    return (
        stream.is_connected()
        and not streams.closing.is_set()
        and transport is not None
        and not transport.is_closing()
    )


async def _closing(streams: LiveStreams, wait: float) -> bool:
    """Wait ``wait`` seconds; True when the app began shutting down meanwhile."""
    try:
        await asyncio.wait_for(streams.closing.wait(), wait)
    except TimeoutError:
        return False
    return True


# -- a conversation ------------------------------------------------------------------------


def render_message(request: web.Request, message: FeedMessage) -> str:
    """One message as the timeline shows it (an ``<li>``)."""
    return aiohttp_jinja2.render_string(
        "takeover_message.html", request, {"m": message, "label": delivery_label}
    )


def render_delivery(request: web.Request, delivery: FeedDelivery) -> str:
    """An outbox row's status: the status of its message once the send is recorded (it
    replaces the shown one), else the row among those not sent (an ``<li>``)."""
    return aiohttp_jinja2.render_string(
        "takeover_delivery.html", request, {"d": delivery, "label": delivery_label}
    )


async def conversation_events(request: web.Request, lead_id: int) -> web.StreamResponse:
    """The live stream of one conversation (see the module docstring)."""
    sessions = request.app[SESSIONS]
    position = FeedPosition.decode(
        request.headers.get("Last-Event-ID") or request.query.get("from")
    )
    if position is None:
        position = await start_position(sessions, lead_id)

    async def first(stream: EventSourceResponse) -> None:
        await stream.send("", event="ready", retry=RETRY_MS)

    async def poll(stream: EventSourceResponse) -> None:
        await _send_news(request, stream, sessions, lead_id, position)

    return await _run(request, first, poll)


async def start_position(sessions: Sessions, lead_id: int) -> FeedPosition:
    """Where a stream with no position starts: the conversation as it is now."""
    async with sessions() as session:
        last = await conversation_feed.recent_messages(session, lead_id, 1)
    return FeedPosition(last[-1].id if last else 0, utcnow())


async def _send_news(
    request: web.Request,
    stream: EventSourceResponse,
    sessions: Sessions,
    lead_id: int,
    position: FeedPosition,
) -> None:
    """Send what changed since ``position`` (moving it along)."""
    async with sessions() as session:
        # Statuses first, then messages. Each read may see its own snapshot (PostgreSQL's
        # READ COMMITTED): a row read as sent then has its message (committed with it) in
        # the read that follows, so its status never arrives before its message.
        changes = await conversation_feed.deliveries_changed(
            session, lead_id, position.since(), BATCH
        )
        messages = await conversation_feed.messages_after(
            session, lead_id, position.message_id, BATCH
        )
    shown: set[int] = set()
    for message in messages:
        position.saw_message(message.id)
        if message.delivery is not None:
            position.saw(message.delivery)  # the rendered message shows its status
            shown.add(message.delivery.outbox_id)
        await stream.send(render_message(request, message), id=position.encode(), event="message")
    for delivery in changes:
        if delivery.outbox_id in shown:
            continue  # read before the message that shows it, so not newer than that
        if position.knows(delivery):
            position.saw(delivery)  # moves status_at along
            continue
        position.saw(delivery)
        await stream.send(render_delivery(request, delivery), id=position.encode(), event="status")
    position.forget_old()


# -- the queue -----------------------------------------------------------------------------


async def queue_version(sessions: Sessions) -> str:
    """A digest of the conversations waiting or taken (changes when the queue does)."""
    async with sessions() as session:
        state = await takeover_store.queue_state(session)
    return hashlib.sha256(repr(state).encode()).hexdigest()[:16]


async def queue_events(request: web.Request) -> web.StreamResponse:
    """The live stream of the queue (see the module docstring)."""
    sessions = request.app[SESSIONS]
    known: dict[str, Any] = {
        "version": request.headers.get("Last-Event-ID") or request.query.get("from") or ""
    }

    async def first(stream: EventSourceResponse) -> None:
        await stream.send("", event="ready", retry=RETRY_MS)

    async def poll(stream: EventSourceResponse) -> None:
        version = await queue_version(sessions)
        if version != known["version"]:
            known["version"] = version
            await stream.send("changed", id=version, event="queue")

    return await _run(request, first, poll)
