"""Building one outgoing email from an outbox payload (pure: no I/O, no clock).

The payload schema of the ``email`` channel (every key but ``text`` and ``subject`` optional)::

    {
      "subject": "Quick question about Acme",
      "text": "plain-text body",                  # always present (the outbox's rule)
      "html": "<p>HTML alternative</p>",          # → multipart/alternative text + HTML
      "to_name": "Jane Doe",                      # display name of the recipient
      "lead_token": "k3J9…",                      # the lead's Lead.token: Reply-To plus tag
      "thread": {"in_reply_to": "<id@x>",         # answer in an existing thread
                 "references": "<a@x> <id@x>"},
      "unsubscribe": true                         # List-Unsubscribe (+ RFC 8058 one-click)
    }

``unsubscribe`` defaults to true when the recipient is a lead (by ``lead_token`` or by
address) and false otherwise (notifications to our own reps). With an unsubscribe link the
text and HTML also get a short visible footer, which Gmail and Yahoo require of bulk senders.
"""

from __future__ import annotations

import html as html_lib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

FOOTER_TEXT = "\n\n--\nDon't want these emails? Unsubscribe: {url}\n"
FOOTER_HTML = (
    '<p style="color:#888;font-size:12px">Don\'t want these emails? '
    '<a href="{url}">Unsubscribe</a></p>'
)


class PayloadError(ValueError):
    """The payload cannot become an email (missing subject or text, wrong types)."""


@dataclass(frozen=True, slots=True)
class Sender:
    """Our side of every email: the From header and the domain ids and tags live under."""

    from_header: str
    address: str
    domain: str

    @classmethod
    def parse(cls, email_from: str) -> Sender:
        """``Sales <sales@acme.com>`` or ``sales@acme.com``; raises ValueError if unusable."""
        name, address = parseaddr(email_from)
        if "@" not in address:
            raise ValueError(f"LEADBOT_EMAIL_FROM is not an email address: {email_from!r}")
        domain = address.rsplit("@", 1)[1].lower()
        return cls(formataddr((name, address)) if name else address, address, domain)

    def reply_address(self, lead_token: str) -> str:
        """The per-lead reply address: ``reply+<token>@<our domain>``."""
        return f"reply+{lead_token}@{self.domain}"


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """What the composer produced: the message and the Message-ID it carries."""

    message: EmailMessage
    message_id: str


def new_message_id(domain: str) -> str:
    """A fresh, globally unique ``<…@domain>`` id (stored to thread the replies)."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def _text(payload: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(f"email payload needs a non-empty {key!r}")
        return None
    if not isinstance(value, str):
        raise PayloadError(f"email payload {key!r} must be a string")
    return value


def compose(
    sender: Sender,
    recipient: str,
    payload: Mapping[str, Any],
    *,
    now: datetime,
    lead_token: str | None,
    unsubscribe: bool,
    unsubscribe_url: str | None,
) -> OutgoingEmail:
    """The email for ``payload`` to ``recipient``.

    ``lead_token`` (the recipient's lead, if any) gives the Reply-To plus address and the
    mailto unsubscribe; ``unsubscribe_url`` is the signed one-click HTTPS link (None when no
    public https URL is configured: then only the mailto form is offered).
    """
    subject = _text(payload, "subject", required=True)
    text = _text(payload, "text", required=True)
    html = _text(payload, "html", required=False)
    to_name = _text(payload, "to_name", required=False)
    assert subject is not None and text is not None  # required=True
    message_id = new_message_id(sender.domain)

    message = EmailMessage()
    message["From"] = sender.from_header
    message["To"] = formataddr((to_name, recipient)) if to_name else recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id
    if lead_token:
        message["Reply-To"] = sender.reply_address(lead_token)
    thread = payload.get("thread")
    if isinstance(thread, Mapping):
        if thread.get("in_reply_to"):
            message["In-Reply-To"] = str(thread["in_reply_to"])
        if thread.get("references"):
            message["References"] = str(thread["references"])

    if unsubscribe:
        links = []
        if unsubscribe_url:
            # RFC 8058: exactly one HTTPS URI, plus the -Post header, makes it one-click.
            links.append(f"<{unsubscribe_url}>")
            text += FOOTER_TEXT.format(url=unsubscribe_url)
            if html is not None:
                html += FOOTER_HTML.format(url=html_lib.escape(unsubscribe_url, quote=True))
        if lead_token:
            # Lands in our inbound handler as a reply saying "unsubscribe": an opt-out.
            links.append(f"<mailto:{sender.reply_address(lead_token)}?subject=unsubscribe>")
        if links:
            message["List-Unsubscribe"] = ", ".join(links)
        if unsubscribe_url:
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return OutgoingEmail(message=message, message_id=message_id)
