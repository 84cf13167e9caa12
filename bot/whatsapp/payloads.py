"""The WhatsApp outbox payload schema: what the inbox processor enqueues and the WhatsApp
channel (``bot/channels/whatsapp.py``) sends.

An outbox row for channel ``"whatsapp"`` has ``recipient`` = the person's E.164 phone
(``"+14155550123"``; strip the ``+`` for the Cloud API ``to``) and one of these payloads.
Every payload carries a human-readable ``"text"`` (the message body), so the stored channel,
the sandbox and the audit trail can show it as is::

    {"kind": "text",    "text": "Hi! ..."}
    {"kind": "buttons", "text": body, "buttons": [{"id": "need:build", "title": "Build"}]}
    {"kind": "list",    "text": body, "button": "Choose",
                        "rows": [{"id": "company_size:1-10", "title": "1-10 people",
                                  "description": "..."}]}    # description may be absent
    {"kind": "cta_url", "text": body, "title": "Book a call", "url": "https://..."}

Optional on every kind: ``"reply_to"``: the inbound wamid this answers (for mark-as-read or
``context``); ``"window_until"``: when the recipient's 24-hour service window closes (ISO
8601, UTC), set by whoever enqueues and knows the lead's last inbound message, so the
channel decides "free-form or template" from the payload instead of a database lookup per
send (:func:`window_until`, :func:`window_open`). Limits (enforced by the script loader,
re-checked here): up to 3 buttons (title <= 20 chars), up to 10 rows (title <= 24,
description <= 72).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dialogs.actions import Message, SendButtons, SendCtaUrl, SendList, SendText

MAX_BUTTONS = 3
MAX_ROWS = 10
SERVICE_WINDOW = timedelta(hours=24)
WINDOW_KEY = "window_until"


def to_payload(message: Message, *, url: str | None = None) -> dict[str, Any]:
    """The outbox payload of an engine message action.

    :param url: for a :class:`SendCtaUrl`, the URL to send instead of the action's own
        (the lead-tagged Calendly link replacing the ``{calendly_url}`` placeholder).
    """
    match message:
        case SendText(text):
            return {"kind": "text", "text": text}
        case SendButtons(body, buttons):
            if len(buttons) > MAX_BUTTONS:
                raise ValueError(f"WhatsApp allows {MAX_BUTTONS} buttons, got {len(buttons)}")
            return {
                "kind": "buttons",
                "text": body,
                "buttons": [{"id": b.id, "title": b.title} for b in buttons],
            }
        case SendList(body, button_title, rows):
            if len(rows) > MAX_ROWS:
                raise ValueError(f"WhatsApp allows {MAX_ROWS} list rows, got {len(rows)}")
            return {
                "kind": "list",
                "text": body,
                "button": button_title,
                "rows": [_row(r.id, r.title, r.description) for r in rows],
            }
        case SendCtaUrl(body, title, own_url):
            return {"kind": "cta_url", "text": body, "title": title, "url": url or own_url}
    raise TypeError(f"not a message action: {message!r}")


def _row(row_id: str, title: str, description: str | None) -> dict[str, str]:
    row = {"id": row_id, "title": title}
    if description:
        row["description"] = description
    return row


def window_until(last_inbound_at: datetime) -> str:
    """The payload's ``window_until`` for someone who last wrote at ``last_inbound_at``."""
    if last_inbound_at.tzinfo is None:  # a naive value read back from SQLite is UTC
        last_inbound_at = last_inbound_at.replace(tzinfo=UTC)
    return (last_inbound_at + SERVICE_WINDOW).astimezone(UTC).isoformat()


def window_open(payload: Any, now: datetime) -> bool | None:
    """Whether the window carried by ``payload`` is open at ``now``; None when the payload
    carries none (or an unreadable one): the caller looks the lead up instead."""
    value = payload.get(WINDOW_KEY) if hasattr(payload, "get") else None
    if not isinstance(value, str):
        return None
    try:
        until = datetime.fromisoformat(value)
    except ValueError:
        return None
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    return now < until
