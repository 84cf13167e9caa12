"""One-click approval of a held first reply: the rep's link and ``GET|POST /approve/{token}``.

A hot lead's T+0 draft waits in ``awaiting_approval``. :func:`send_approval_links` emails the
lead's owner (through :func:`bot.notify.notify_reps`) a link carrying a signed token
(``bot.http.signing``, purpose ``approve_touch``). ``GET`` only shows the draft with a confirm
button (mail scanners prefetch links); ``POST`` approves through the sweeper, the same path
as ``POST /api/touches/{id}/approve``, so a second POST finds the touch sent and sends
nothing. A token that does not verify gets a 400 page.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime

from aiohttp import web

from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.followups import SWEEPER
from bot.http.inputs import valid_id
from bot.http.pages import html_page
from bot.http.signing import BadSignature, Signer
from bot.notify import RepOptions, lead_label, notify_reps
from bot.settings import Settings
from scheduler.errors import NotFoundError
from scheduler.followups.touches import TouchStateError, TouchStatus
from scheduler.intake.first_touch import awaiting_first_reply
from scheduler.store import Sessions
from scheduler.store.leads import find_lead
from scheduler.store.models import Lead, Touch, utcnow
from scheduler.store.touches import find_touch

log = logging.getLogger("leadbot.approval_links")
routes = web.RouteTableDef()
PURPOSE = "approve_touch"
# bot/notify.py has no "approval" kind yet; a hot lead is a qualified one meanwhile.
KIND = "approval"


def approval_url(settings: Settings, touch_id: int) -> str:
    """The signed one-click link for ``touch_id`` (``LEADBOT_PUBLIC_URL`` + ``/approve/…``)."""
    token = Signer(settings.secret_key).sign(PURPOSE, {"touch": touch_id})
    return f"{settings.public_url.rstrip('/')}/approve/{token}"


async def send_approval_links(
    sessions: Sessions,
    settings: Settings,
    *,
    sequence: str,
    step: str,
    now: datetime,
) -> list[int]:
    """Notify the owners of held first replies that have no link yet; the outbox ids to
    deliver. Each touch is marked in the same transaction (and the notification key is
    deterministic), so a crash between the two never sends a second link."""
    ids: list[int] = []
    async with sessions.begin() as session:
        for touch in await awaiting_first_reply(session, sequence, step):
            lead = await find_lead(session, touch.lead_id)
            if lead is None:
                continue
            url = approval_url(settings, touch.id)
            subject = (touch.meta or {}).get("subject") or ""
            ids += await notify_reps(
                session,
                lead=lead,
                kind=KIND,
                summary=f"Hot lead {lead_label(lead)}: approve the first reply with one click.",
                details={"approve": url, "subject": subject, "draft": touch.draft or ""},
                now=now,
                options=RepOptions.from_settings(settings),
            )
            touch.meta = {**(touch.meta or {}), "approval_link_sent_at": now.isoformat()}
    return ids


def _touch_id(request: web.Request) -> int | None:
    try:
        data = Signer(request.app[SETTINGS].secret_key).verify(
            PURPOSE, request.match_info["token"]
        )
    except (BadSignature, ValueError):
        return None
    touch = data.get("touch")
    return touch if valid_id(touch) else None  # within 64 bits, or the query fails


def _bad_link() -> web.Response:
    return html_page(
        "This link is not valid",
        "<p>The approval link is incomplete or was changed. Use the link from the "
        "email itself, or approve in the approval queue.</p>",
        status=400,
    )


def draft_html(touch: Touch, lead: Lead | None) -> str:
    """The held draft as HTML: recipient, subject and text."""
    to = html.escape(lead.email or "") if lead else ""
    subject = html.escape(str((touch.meta or {}).get("subject") or ""))
    text = html.escape(touch.draft or "")
    return (
        f"<p><strong>To:</strong> {to}<br><strong>Subject:</strong> {subject}</p>"
        f'<pre style="white-space:pre-wrap;font-family:inherit;border-left:3px solid #ccc;'
        f'padding-left:1rem">{text}</pre>'
    )


async def confirm_draft(
    request: web.Request, touch_id: int, *, button: str, title: str
) -> web.Response:
    """The page a one-click link opens: the held draft and a ``button`` that POSTs back (mail
    scanners prefetch links, so GET changes nothing); ``title`` names the lead as ``{lead}``."""
    async with request.app[SESSIONS]() as session:
        touch = await find_touch(session, touch_id)
        lead = await find_lead(session, touch.lead_id) if touch else None
    if touch is None:
        return html_page("Draft not found", "<p>This draft no longer exists.</p>", status=404)
    if touch.status != TouchStatus.AWAITING_APPROVAL.value:
        return html_page(
            "Already handled",
            f"<p>This draft is {html.escape(touch.status)}; "
            "nothing more to do.</p>" + draft_html(touch, lead),
        )
    form = (
        '<form method="post"><button type="submit" style="font-size:1rem;'
        f'padding:.5rem 1rem">{html.escape(button)}</button></form>'
    )
    who = lead_label(lead) if lead else "the lead"
    return html_page(title.format(lead=who), draft_html(touch, lead) + form)


@routes.get("/approve/{token}")
async def show_draft(request: web.Request) -> web.Response:
    """Show the held draft and a confirm button; changes nothing."""
    touch_id = _touch_id(request)
    if touch_id is None:
        return _bad_link()
    return await confirm_draft(
        request, touch_id, button="Approve and send", title="Approve the reply to {lead}"
    )


@routes.post("/approve/{token}")
async def approve(request: web.Request) -> web.Response:
    """Approve and send the draft (at most once: a second POST finds it sent)."""
    touch_id = _touch_id(request)
    if touch_id is None:
        return _bad_link()
    try:
        touch = await request.app[SWEEPER].approve(touch_id, by="approval link", now=utcnow())
    except NotFoundError:
        return html_page("Draft not found", "<p>This draft no longer exists.</p>", status=404)
    except TouchStateError as exc:
        return html_page(
            "Already handled", f"<p>{html.escape(str(exc))}. Nothing was sent.</p>", status=409
        )
    if touch.status not in (TouchStatus.QUEUED.value, TouchStatus.SENT.value):
        return html_page(
            "Not sent",
            f"<p>The lead can no longer be written to: "
            f"{html.escape(touch.note or touch.status)}.</p>",
            status=409,
        )
    log.info("touch %s approved by link", touch_id)
    return html_page("Sent", "<p>Approved: the reply is on its way.</p>")
