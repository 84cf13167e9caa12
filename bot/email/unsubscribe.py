"""One-click unsubscribe (RFC 8058): ``GET|POST /unsubscribe/{token}``, no login.

The token is the signed ``{"lead", "email"}`` the email channel put in ``List-Unsubscribe``.

- ``POST`` unsubscribes: mailbox providers post ``List-Unsubscribe=One-Click`` with no
  cookies; our own confirmation form posts here too. It answers 200 with a short page —
  never a redirect — also when the address was already unsubscribed.
- ``GET`` only shows a page with a button that POSTs: link scanners and previews follow
  GETs, and must never unsubscribe anybody.
- A token that does not verify gets a 400 page and changes nothing.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from bot.email.actions import opt_out
from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.inputs import valid_id
from bot.http.pages import html_page
from bot.http.signing import BadSignature, verify
from scheduler.store.models import utcnow
from scheduler.store.suppressions import SuppressionReason

log = logging.getLogger("leadbot.unsubscribe")
routes = web.RouteTableDef()

UNSUBSCRIBE_PURPOSE = "unsubscribe"
"""The signing purpose of unsubscribe tokens (the email channel signs, this module verifies)."""


def _page(title: str, body: str, status: int = 200) -> web.Response:
    return html_page(title, body, status, width="32rem")


def _verified(request: web.Request) -> tuple[int | None, str] | None:
    """The lead id and address in the URL's token, or None when it does not verify."""
    secret = request.app[SETTINGS].secret_key
    try:
        data = verify(UNSUBSCRIBE_PURPOSE, request.match_info["token"], secret=secret)
    except (BadSignature, ValueError):
        return None
    lead, address = data.get("lead"), data.get("email")
    # A signed id is still checked: one beyond 64 bits would fail the query (a 500).
    if not isinstance(address, str) or not address or not (lead is None or valid_id(lead)):
        return None
    return lead, address


def _bad_link() -> web.Response:
    return _page(
        "This link is not valid",
        "<p>The unsubscribe link is incomplete or was changed. Please use the link from "
        "the email itself, or reply to the email with “unsubscribe”.</p>",
        status=400,
    )


@routes.get("/unsubscribe/{token}")
async def confirm_page(request: web.Request) -> web.Response:
    """Ask for confirmation; changes nothing."""
    found = _verified(request)
    if found is None:
        return _bad_link()
    _, address = found
    return _page(
        "Unsubscribe",
        f"<p>Stop all emails to <strong>{html.escape(address)}</strong>?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit" style="font-size:1rem;padding:.5rem 1rem">Unsubscribe</button>'
        "</form>",
    )


@routes.post("/unsubscribe/{token}")
async def unsubscribe(request: web.Request) -> web.Response:
    """Suppress the address, flag the lead opted out and cancel its follow-ups."""
    found = _verified(request)
    if found is None:
        return _bad_link()
    lead_id, address = found
    now = utcnow()
    async with request.app[SESSIONS].begin() as session:
        await opt_out(
            session,
            address,
            lead_id=lead_id,
            reason=SuppressionReason.UNSUBSCRIBE,
            detail="one-click unsubscribe link",
            now=now,
        )
    log.info("unsubscribed %s (lead %s) via link", address, lead_id)
    return _page(
        "You are unsubscribed",
        f"<p>We will not email <strong>{html.escape(address)}</strong> again.</p>",
    )
