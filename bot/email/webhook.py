"""``POST /webhooks/email``: inbound email from a provider, verified, then handled.

Two forms are accepted:

- **Mailgun routes** (``application/x-www-form-urlencoded`` or ``multipart/form-data``):
  ``signature`` must equal hex HMAC-SHA256(``LEADBOT_MAILGUN_SIGNING_KEY``,
  ``timestamp + token``); a timestamp more than :data:`MAX_AGE_SECONDS` away from now or a
  token already used is refused with 406, which tells Mailgun not to retry.
- **JSON** ``{"from","to","subject","text","message_id","in_reply_to","references",
  "headers"}`` with ``Authorization: Bearer`` ``LEADBOT_EMAIL_WEBHOOK_TOKEN`` (or
  ``LEADBOT_API_TOKEN``), for an IMAP bridge, n8n or another provider.

The answer is 200 ``{"status": "reply" | "opt_out" | "auto_reply" | "bounce" | "unmatched"
| "duplicate", "lead_id"}`` once the effects are committed; any failure is a non-2xx, and
the provider's retry is safe (the Message-ID is recorded in the same transaction). A reply
is then read into a note on the lead in the background (:mod:`bot.email.notes_service`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from bot.email.inbound import InboundEmailOutcome, first_time, handle_email
from bot.email.inbound_message import InboundEmail, InboundError, from_json, from_mailgun
from bot.email.notes_service import NOTES
from bot.email.notes_service import setup as notes_setup
from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.errors import ApiError, read_json_object
from bot.http.inputs import clean_text
from bot.settings import Settings
from scheduler.store.models import utcnow

MAX_AGE_SECONDS = 300
# Unix seconds in ASCII digits only: float() would also read "1796527551e0", "+1796527551"
# or " 1796527551", and since the MAC covers timestamp + token concatenated, characters moved
# from the token into such a timestamp would make a new token with a valid signature.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
routes = web.RouteTableDef()


def mailgun_signature(key: str, timestamp: str, token: str) -> str:
    """What Mailgun signs a webhook with (hex HMAC-SHA256 of timestamp + token)."""
    return hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_mailgun(form: Mapping[str, Any], key: str, now: datetime) -> str:
    """Check a Mailgun post's signature and age; return its token (for replay checks)."""
    timestamp, token, signature = (form.get(k) for k in ("timestamp", "token", "signature"))
    if not all(isinstance(v, str) and v for v in (timestamp, token, signature)):
        raise ApiError(401, "unauthorized", "timestamp, token and signature are required")
    assert isinstance(timestamp, str) and isinstance(token, str) and isinstance(signature, str)
    expected = mailgun_signature(key, timestamp, token)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise ApiError(401, "bad_signature", "the Mailgun signature does not match")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise ApiError(406, "stale", "the timestamp is not unix seconds in digits")
    if abs(now.timestamp() - int(timestamp)) > MAX_AGE_SECONDS:
        raise ApiError(406, "stale", f"the timestamp is more than {MAX_AGE_SECONDS}s off")
    return token


def _authorize_json(request: web.Request, settings: Settings) -> None:
    accepted = [
        t.encode()
        for t in (
            settings.email_webhook_token.get_secret_value(),
            settings.api_token.get_secret_value(),
        )
        if t
    ]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(given.encode(), token) for token in accepted
    ):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token")


async def _read(
    request: web.Request, settings: Settings, now: datetime
) -> tuple[InboundEmail, str | None]:
    """The posted email and the Mailgun token (None for the JSON form)."""
    if request.content_type in FORM_TYPES:
        key = settings.mailgun_signing_key.get_secret_value()
        if not key:
            raise ApiError(401, "unauthorized", "LEADBOT_MAILGUN_SIGNING_KEY is not configured")
        posted = await request.post()
        # Attachments arrive as file fields; only the text fields matter here.
        form = {k: v for k, v in posted.items() if isinstance(v, str)}
        token = verify_mailgun(form, key, now)
        # NUL is dropped here (PostgreSQL refuses it); the JSON form is cleaned when parsed.
        return from_mailgun({k: clean_text(v) for k, v in form.items()}), token
    _authorize_json(request, settings)
    return from_json(await read_json_object(request)), None


@routes.post("/webhooks/email")
async def email_webhook(request: web.Request) -> web.Response:
    """Verify, deduplicate and apply one inbound email."""
    settings = request.app[SETTINGS]
    now = utcnow()
    try:
        email, token = await _read(request, settings, now)
    except InboundError as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    async with request.app[SESSIONS].begin() as session:
        if token is not None and not await first_time(session, "mailgun-token", token, now):
            raise ApiError(406, "replayed", "this webhook token was already used")
        result = await handle_email(session, email, now=now)
    notes = request.app.get(NOTES)
    if notes is not None and result.outcome is InboundEmailOutcome.REPLY and result.message_id:
        notes.submit(result.message_id)  # committed: the note is made in the background
    return web.json_response({"status": result.outcome.value, "lead_id": result.lead_id})


def setup(app: web.Application) -> None:
    """Register ``POST /webhooks/email`` and the notes made from its replies."""
    app.router.add_routes(routes)
    notes_setup(app)
