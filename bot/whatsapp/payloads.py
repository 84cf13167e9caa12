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
``context``). Limits (enforced by the script loader, re-checked here): up to 3 buttons
(title <= 20 chars), up to 10 rows (title <= 24, description <= 72).
"""

from __future__ import annotations

from typing import Any

from dialogs.actions import Message, SendButtons, SendCtaUrl, SendList, SendText

MAX_BUTTONS = 3
MAX_ROWS = 10


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
