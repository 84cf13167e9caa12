"""The live take-over (issue 14, item 4): the queue of conversations waiting for a person,
taking one (the bot goes quiet), replying from the console through the outbox on the
conversation's channel, and handing it back to the bot.

Any signed-in user sees the queue and every conversation, and may take one nobody has;
only the one who has it replies or hands it back (an admin may also hand back anyone's,
and take one from someone). Two users never both have one conversation: taking is one
conditional UPDATE (:mod:`scheduler.pipeline.takeover`), and the loser is told who won.

Pages: ``GET /console/takeover`` (the queue; ``/queue`` is its fragment, re-fetched when
the queue's stream says it changed), ``GET /console/takeover/{lead}`` (the conversation,
live). Actions (forms, CSRF-checked): ``POST …/{lead}/take``, ``…/reply``,
``…/hand-back``. Live streams: :mod:`bot.console.takeover_events`.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.console import takeover_events
from bot.console.render import current, is_admin, render
from bot.console.takeover_feed import FeedPosition, delivery_label
from bot.http.appkeys import DISPATCHER, SESSIONS, SETTINGS
from bot.http.inputs import clean_text, parse_id
from scheduler.pipeline import takeover as ownership
from scheduler.pipeline.lead_actions import LeadActor, lock_for
from scheduler.pipeline.takeover_reply import (
    ReplyRoute,
    TemplateConfig,
    enqueue_reply,
    reply_facts,
    route_reply,
)
from scheduler.store import conversation_feed
from scheduler.store import takeover as takeover_store
from scheduler.store.leads import find_lead
from scheduler.store.models import utcnow
from scheduler.store.takeover import TakeoverEntry

log = logging.getLogger("leadbot.console")

PREFIX = "/console/takeover"
LEAD = PREFIX + r"/{lead_id:\d+}"
TIMELINE_MESSAGES = 200  # the conversation page shows the last ones
UNSENT_SHOWN = 50

routes = web.RouteTableDef()
setup = takeover_events.setup  # the console's setup registers the streams' shutdown


def _lead_id(request: web.Request) -> int:
    lead_id = parse_id(request.match_info["lead_id"])  # the route's \d+ may not fit a column
    if lead_id is None:
        raise web.HTTPNotFound(reason="no such lead")
    return lead_id


def _template(request: web.Request) -> TemplateConfig:
    settings = request.app[SETTINGS]
    return TemplateConfig(settings.whatsapp_template, settings.whatsapp_template_language)


# -- the queue -----------------------------------------------------------------------------


async def _queue(request: web.Request) -> dict[str, Any]:
    me = current(request).user.id
    async with request.app[SESSIONS]() as session:
        waiting = await takeover_store.waiting(session)
        taken = await takeover_store.taken(session)
    return {
        "waiting": waiting,
        "mine": [e for e in taken if e.taken_by_user_id == me],
        "others": [e for e in taken if e.taken_by_user_id != me],
        "holder_label": ownership.holder_label,
    }


@routes.get(PREFIX)
async def queue_page(request: web.Request) -> web.Response:
    """The queue: waiting for a person (longest first, with how long), mine, others'."""
    # The version first: a change between the two reads makes the stream report it again.
    version = await takeover_events.queue_version(request.app[SESSIONS])
    return render(request, "takeover.html", {**await _queue(request), "queue_version": version})


@routes.get(PREFIX + "/queue")
async def queue_fragment(request: web.Request) -> web.Response:
    """The queue's lists alone (htmx swaps them in when the queue changed)."""
    return render(request, "takeover_queue.html", await _queue(request))


@routes.get(PREFIX + "/events")
async def queue_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``queue`` whenever the queue changed."""
    return await takeover_events.queue_events(request)


# -- one conversation ----------------------------------------------------------------------


async def _entry(request: web.Request, lead_id: int) -> TakeoverEntry:
    async with request.app[SESSIONS]() as session:
        entry = await takeover_store.entry(session, lead_id)
    if entry is None:
        raise web.HTTPNotFound(reason=f"lead {lead_id} does not exist")
    return entry


@routes.get(LEAD)
async def conversation_page(request: web.Request) -> web.Response:
    """The conversation, both ways with delivery statuses, live; the reply box for the one
    who has it; take, take from, hand back."""
    lead_id, login, now = _lead_id(request), current(request), utcnow()
    route: ReplyRoute | None = None
    async with request.app[SESSIONS]() as session:
        entry = await takeover_store.entry(session, lead_id)
        if entry is None:
            raise web.HTTPNotFound(reason=f"lead {lead_id} does not exist")
        messages = await conversation_feed.recent_messages(session, lead_id, TIMELINE_MESSAGES)
        unsent = await conversation_feed.unsent(session, lead_id, UNSENT_SHOWN)
        mine = entry.taken_by_user_id == login.user.id
        lead = await find_lead(session, lead_id) if mine else None
        if lead is not None:
            route = route_reply(await reply_facts(session, lead), _template(request), now)
    position = _position(messages, unsent, now)
    admin = is_admin(login)
    return render(
        request,
        "takeover_conversation.html",
        {
            "e": entry,
            "messages": messages,
            "unsent": unsent,
            "label": delivery_label,
            "holder": ownership.holder_label(entry) if entry.taken_by_user_id else None,
            "mine": mine,
            "may_take_from": admin and entry.taken_by_user_id is not None and not mine,
            "may_hand_back": entry.taken_by_user_id is not None and (mine or admin),
            "route": route,
            "idempotency_key": secrets.token_urlsafe(18),
            "events": f"{PREFIX}/{lead_id}/events?from={position.encode()}",
        },
    )


def _position(
    messages: list[conversation_feed.FeedMessage],
    unsent: list[conversation_feed.FeedDelivery],
    now: datetime,
) -> FeedPosition:
    """Where the page's live stream starts: after what the page shows."""
    position = FeedPosition(messages[-1].id if messages else 0, now)
    for message in messages:
        if message.delivery is not None:
            position.saw(message.delivery)
    for delivery in unsent:
        position.saw(delivery)
    position.forget_old()
    return position


@routes.get(LEAD + "/events")
async def conversation_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the conversation's new messages and delivery statuses."""
    lead_id = _lead_id(request)
    await _entry(request, lead_id)  # 404 before the stream starts
    return await takeover_events.conversation_events(request, lead_id)


def _user_id(value: Any, what: str) -> int | None:
    if value in (None, ""):
        return None
    user_id = parse_id(value) if isinstance(value, str) else None
    if user_id is None:
        raise web.HTTPBadRequest(reason=f"{what} must be a user id")
    return user_id


@routes.post(LEAD + "/take")
async def take(request: web.Request) -> web.StreamResponse:
    """Take the conversation (the bot stays quiet): admins any, reps those of their own and
    unowned leads; an admin may name ``from_user``, who they saw had it, to take it from
    them."""
    lead_id, login = _lead_id(request), current(request)
    from_user = _user_id((await request.post()).get("from_user"), "from_user")
    if from_user is not None and not is_admin(login):
        raise web.HTTPForbidden(reason="only an admin takes a conversation from someone")
    actor = LeadActor(email=login.user.email, admin=is_admin(login), rep_id=login.user.rep_id)
    async with request.app[SESSIONS].begin() as session:
        # Talking to the prospect is acting on the lead: a rep takes conversations of their
        # own and unowned leads, as on the lead page (the lead stays locked to the end).
        await lock_for(session, lead_id, actor)
        if from_user is None:
            await ownership.take(session, lead_id, user_id=login.user.id, now=utcnow())
        else:
            await ownership.take_from(
                session, lead_id, from_user_id=from_user, user_id=login.user.id, now=utcnow()
            )
    raise web.HTTPSeeOther(f"{PREFIX}/{lead_id}")


@routes.post(LEAD + "/reply")
async def reply(request: web.Request) -> web.StreamResponse:
    """Send a reply (the one who has the conversation): stored in the outbox under the
    form's idempotency key (a double submit sends once), then delivered at once."""
    lead_id, login = _lead_id(request), current(request)
    form = await request.post()
    text, key = form.get("text", ""), form.get("idempotency_key", "")
    if not isinstance(text, str) or not isinstance(key, str):
        raise web.HTTPBadRequest(reason="the reply must be text")
    text = clean_text(text)  # a NUL would be sent, then refused when the message is recorded
    async with request.app[SESSIONS].begin() as session:
        item_id = await enqueue_reply(
            session,
            lead_id,
            user_id=login.user.id,
            author=login.user.email,
            text=text,
            idempotency_key=key,
            template=_template(request),
            now=utcnow(),
        )
    if item_id is not None:
        try:  # now, like a bot reply; the outbox job is the backstop
            await request.app[DISPATCHER].deliver_and_follow([item_id], utcnow())
        except Exception:
            log.exception("console reply %s to lead %s: delivery failed", item_id, lead_id)
    raise web.HTTPSeeOther(f"{PREFIX}/{lead_id}#reply")


@routes.post(LEAD + "/hand-back")
async def hand_back(request: web.Request) -> web.StreamResponse:
    """Give the conversation back to the bot (its owner; an admin for anyone, naming the
    ``owner`` they saw)."""
    lead_id, login = _lead_id(request), current(request)
    owner = _user_id((await request.post()).get("owner"), "owner")
    async with request.app[SESSIONS].begin() as session:
        await ownership.hand_back(
            session,
            lead_id,
            user_id=login.user.id,
            admin=is_admin(login),
            owner_user_id=owner,
            now=utcnow(),
        )
    raise web.HTTPSeeOther(f"{PREFIX}/{lead_id}")
