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

The message is built with the ``compat32`` classes (``MIMEText``) rather than
``EmailMessage``: the modern policy parses every header as it is set and refolds it on output,
which costs far more than everything else composing does (figures: ``bench/README.md``).
What that policy did for us is done here explicitly: non-ASCII display names and subjects
become RFC 2047 encoded words, bodies are 7-bit clean (quoted-printable when needed), and
header values from the payload may not contain line breaks (no header injection).
"""

from __future__ import annotations

import html as html_lib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from typing import Any

from scheduler.delivery.channels import PayloadError

FOOTER_TEXT = "\n\n--\nDon't want these emails? Unsubscribe: {url}\n"
FOOTER_HTML = (
    '<p style="color:#888;font-size:12px">Don\'t want these emails? '
    '<a href="{url}">Unsubscribe</a></p>'
)


class EmailPayloadError(PayloadError):
    """The payload cannot become an email (missing subject or text, wrong types)."""


@dataclass(frozen=True, slots=True)
class EmailSender:
    """Our side of every email: the From header and the domain ids and tags live under."""

    from_header: str
    address: str
    domain: str

    @classmethod
    def parse(cls, email_from: str) -> EmailSender:
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

    message: Message
    message_id: str


def new_message_id(domain: str) -> str:
    """A fresh, globally unique ``<…@domain>`` id (stored to thread the replies)."""
    return f"<{uuid.uuid4().hex}@{domain}>"


def _text(payload: Mapping[str, Any], key: str, *, required: bool) -> str | None:
    value = payload.get(key)
    if value is None or value == "":
        if required:
            raise EmailPayloadError(f"email payload needs a non-empty {key!r}")
        return None
    if not isinstance(value, str):
        raise EmailPayloadError(f"email payload {key!r} must be a string")
    return value


def _header(value: str, what: str) -> str | Header:
    """A header value from the payload: one line, RFC 2047 encoded when not ASCII."""
    if "\r" in value or "\n" in value:
        raise EmailPayloadError(f"email {what} may not contain line breaks")
    return value if value.isascii() else Header(value, "utf-8")


def _utf8_qp() -> Charset:
    charset = Charset("utf-8")
    charset.body_encoding = QP  # readable and 7-bit clean (the default for UTF-8 is base64)
    return charset


def _part(body: str, subtype: str) -> Message:
    """A 7-bit clean text part: plain ASCII as is, anything else quoted-printable UTF-8."""
    if body.isascii() and all(len(line) <= 998 for line in body.splitlines()):
        # What MIMEText(body, subtype, "us-ascii") builds, without its charset machinery.
        part = Message()
        part["Content-Type"] = f'text/{subtype}; charset="us-ascii"'
        part["MIME-Version"] = "1.0"
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(body)
        return part
    return MIMEText(body, subtype, _utf8_qp())  # type: ignore[arg-type]


def compose(
    sender: EmailSender,
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

    headers: list[tuple[str, str | Header]] = [("From", sender.from_header)]
    if to_name:
        headers.append(("To", formataddr((_checked(to_name, "to_name"), recipient))))
    else:
        headers.append(("To", recipient))
    headers += [
        ("Subject", _header(subject, "subject")),
        ("Date", format_datetime(now)),
        ("Message-ID", message_id),
    ]
    if lead_token:
        headers.append(("Reply-To", sender.reply_address(lead_token)))
    thread = payload.get("thread")
    if isinstance(thread, Mapping):
        if thread.get("in_reply_to"):
            headers.append(("In-Reply-To", _header(str(thread["in_reply_to"]), "thread")))
        if thread.get("references"):
            headers.append(("References", _header(str(thread["references"]), "thread")))

    if unsubscribe:
        links = []
        if unsubscribe_url:
            # RFC 8058: exactly one HTTPS URI, plus the -Post header, makes it one-click.
            links.append(f"<{_checked(unsubscribe_url, 'unsubscribe link')}>")
            text += FOOTER_TEXT.format(url=unsubscribe_url)
            if html is not None:
                html += FOOTER_HTML.format(url=html_lib.escape(unsubscribe_url, quote=True))
        if lead_token:
            # Lands in our inbound handler as a reply saying "unsubscribe": an opt-out.
            links.append(f"<mailto:{sender.reply_address(lead_token)}?subject=unsubscribe>")
        if links:
            headers.append(("List-Unsubscribe", ", ".join(links)))
        if unsubscribe_url:
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))

    message: Message
    if html is None:
        message = _part(text, "plain")
    else:
        message = MIMEMultipart(
            "alternative", _subparts=[_part(text, "plain"), _part(html, "html")]
        )
    for name, value in headers:
        message[name] = value  # type: ignore[assignment]  # compat32 takes Header values
    return OutgoingEmail(message=message, message_id=message_id)


def _checked(value: str, what: str) -> str:
    if "\r" in value or "\n" in value:
        raise EmailPayloadError(f"email {what} may not contain line breaks")
    return value
