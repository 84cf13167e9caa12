"""The digest's one-click links: ``GET|POST /digest/approve/{token}`` and ``/digest/skip/{token}``.

Tokens are signed (:mod:`bot.http.signing`, purposes ``digest_approve`` / ``digest_skip``),
name one touch and carry an expiry (``exp``, Unix seconds; :class:`bot.http.digest.DigestLinks`).
``GET`` only shows the draft with a confirm button (mail scanners prefetch links); ``POST``
approves through the sweeper (the draft is re-checked against the lead — opted out, erased,
replied meanwhile — and sent through the outbox under the touch's one key) or skips it
(and the rest of that reactivation: no "last call" follows a skipped note). A
second POST finds the touch handled and does nothing. Bad token: 400; expired: 410.
The periodic job that sends the digests is ``reactivation.digest``
(:func:`bot.http.followups.jobs`).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.approval_links import confirm_draft
from bot.http.digest import APPROVE, SKIP
from bot.http.followups import SWEEPER
from bot.http.inputs import valid_id
from bot.http.pages import html_page
from bot.http.signing import BadSignature, Signer
from scheduler.errors import NotFoundError
from scheduler.followups.touches import TouchStateError, TouchStatus
from scheduler.store.models import utcnow
from scheduler.store.reactivation import cancel_cycle

log = logging.getLogger("leadbot.digest_links")
routes = web.RouteTableDef()
# What time the links are checked against (and the approval stamped with); tests that run
# the digest at a simulated time set it before the app starts. Default: the wall clock.
Clock = Callable[[], datetime]
CLOCK: web.AppKey[Clock] = web.AppKey("digest_links_clock")
ACTIONS = {"approve": APPROVE, "skip": SKIP}


def _now(request: web.Request) -> datetime:
    return request.app.get(CLOCK, utcnow)()


def _touch_id(request: web.Request, now: datetime) -> int | web.Response:
    """The touch the link names, or the page to show instead (bad or expired link)."""
    purpose = ACTIONS[request.match_info["action"]]
    try:
        data = Signer(request.app[SETTINGS].secret_key).verify(
            purpose, request.match_info["token"]
        )
    except (BadSignature, ValueError):
        data = {}
    touch: Any = data.get("touch")
    expires = data.get("exp")
    if not valid_id(touch) or not isinstance(expires, int):
        return html_page(
            "This link is not valid",
            "<p>The link is incomplete or was changed. Use the link from the digest "
            "itself, or open the approval queue.</p>",
            status=400,
        )
    if now.timestamp() >= expires:
        return html_page(
            "This link has expired",
            "<p>Digest links work for a limited time. The draft is still in the "
            "approval queue, or in tomorrow's digest.</p>",
            status=410,
        )
    return int(touch)


@routes.get(r"/digest/{action:approve|skip}/{token}")
async def confirm_page(request: web.Request) -> web.Response:
    """Show the draft and a confirm button; changes nothing."""
    touch_id = _touch_id(request, _now(request))
    if isinstance(touch_id, web.Response):
        return touch_id
    label = "Approve and send" if request.match_info["action"] == "approve" else "Skip this draft"
    return await confirm_draft(
        request, touch_id, button=label, title="Reactivation draft for {lead}"
    )


@routes.post(r"/digest/{action:approve|skip}/{token}")
async def act(request: web.Request) -> web.Response:
    """Approve (send) or skip the draft; at most once."""
    now = _now(request)
    touch_id = _touch_id(request, now)
    if isinstance(touch_id, web.Response):
        return touch_id
    sweeper = request.app[SWEEPER]
    approving = request.match_info["action"] == "approve"
    try:
        if approving:
            touch = await sweeper.approve(touch_id, by="digest link", now=now)
        else:
            touch = await sweeper.reject(
                touch_id, by="digest link", reason="skipped from the digest", now=now
            )
    except NotFoundError:
        return html_page("Draft not found", "<p>This draft no longer exists.</p>", status=404)
    except TouchStateError as exc:
        return html_page(
            "Already handled", f"<p>{html.escape(str(exc))}. Nothing changed.</p>", status=409
        )
    if not approving:
        # Skipping a reactivation skips the rest of it: no "last call" after a note that
        # never went out.
        async with request.app[SESSIONS].begin() as session:
            await cancel_cycle(
                session,
                touch.lead_id,
                touch.sequence,
                touch.cycle,
                reason="reactivation skipped from the digest",
            )
        log.info("touch %s skipped from the digest", touch_id)
        return html_page("Skipped", "<p>Skipped: this draft will not be sent.</p>")
    if touch.status not in (TouchStatus.QUEUED.value, TouchStatus.SENT.value):
        return html_page(
            "Not sent",
            "<p>The lead can no longer be written to: "
            f"{html.escape(touch.note or touch.status)}.</p>",
            status=409,
        )
    log.info("touch %s approved from the digest", touch_id)
    return html_page("Sent", "<p>Approved: the message is on its way.</p>")
