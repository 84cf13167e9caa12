"""One received email, whichever way it arrived (Mailgun form post, our JSON form).

Both forms become an :class:`InboundEmail`; everything after that (classification,
matching, effects) works on that one shape. Validation errors are :class:`InboundError`
with a message saying which field is wrong.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr
from typing import Any

from bot.http.inputs import RequestInputError, loads
from dialogs.errors import InputError

_MSGID = re.compile(r"<[^<>\s]+>")
MAX_TEXT = 100_000


class InboundError(InputError, ValueError):
    """The posted email is unusable (a required field missing or of the wrong type)."""


@dataclass(frozen=True, slots=True)
class InboundEmail:
    """A received email, normalized: lower-cased sender, ``<…>`` message ids (recipients keep
    their case: the plus token in ``reply+<token>@`` is case-sensitive)."""

    sender: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    message_id: str | None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    # The provider's own quote-stripped text (Mailgun ``stripped-text``), when it gave one.
    stripped_text: str | None = None

    def header(self, name: str) -> str | None:
        """The first header called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    @property
    def dedup_key(self) -> str:
        """What makes two deliveries the same email: the Message-ID, else a content hash."""
        if self.message_id:
            return self.message_id
        digest = hashlib.sha256(
            "\x00".join([self.sender, *self.recipients, self.subject, self.text]).encode()
        ).hexdigest()
        return f"sha256:{digest}"


def message_ids(value: str | None) -> tuple[str, ...]:
    """The ``<id>`` tokens of an In-Reply-To / References value (a bare id gets brackets)."""
    if not value:
        return ()
    found = _MSGID.findall(value)
    if not found and value.strip() and " " not in value.strip():
        found = [f"<{value.strip()}>"]
    return tuple(found)


def _address(value: str) -> str:
    return parseaddr(value)[1].strip().lower()


def _str(data: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = data.get(key)
    if value is None:
        if required:
            raise InboundError(f"{key!r} is required")
        return ""
    if not isinstance(value, str):
        raise InboundError(f"{key!r} must be a string")
    return value[:MAX_TEXT]


def _headers(raw: Any) -> tuple[tuple[str, str], ...]:
    """Headers as Mailgun (JSON list of pairs) or JSON callers (object or list) send them."""
    if isinstance(raw, str):
        if not raw.strip():
            return ()
        try:
            raw = loads(raw)  # never a RecursionError or a 5,000-digit int: a 422
        except RequestInputError as exc:
            raise InboundError(f"'message-headers' is not JSON: {exc}") from None
    if raw is None:
        return ()
    if isinstance(raw, Mapping):
        return tuple((str(k), str(v)) for k, v in raw.items())
    if isinstance(raw, list) and all(isinstance(p, list | tuple) and len(p) == 2 for p in raw):
        return tuple((str(k), str(v)) for k, v in raw)
    raise InboundError("headers must be an object or a list of [name, value] pairs")


def from_mailgun(form: Mapping[str, Any]) -> InboundEmail:
    """An email from Mailgun's route form fields (``sender``, ``recipient``, …)."""
    sender = _address(_str(form, "sender") or _str(form, "from", required=True))
    recipient = _str(form, "recipient", required=True)
    stripped = _str(form, "stripped-text")
    return InboundEmail(
        sender=sender,
        recipients=tuple(a.strip() for _, a in getaddresses([recipient]) if a),
        subject=_str(form, "subject"),
        text=_str(form, "body-plain"),
        message_id=(message_ids(_str(form, "Message-Id")) or (None,))[0],
        in_reply_to=message_ids(_str(form, "In-Reply-To")),
        references=message_ids(_str(form, "References")),
        headers=_headers(form.get("message-headers")),
        stripped_text=stripped or None,
    )


def from_json(body: Mapping[str, Any]) -> InboundEmail:
    """An email from our JSON form: ``{"from","to","subject","text","message_id",
    "in_reply_to","references","headers"}`` (``to`` a string or a list)."""
    to = body.get("to")
    if isinstance(to, str):
        to_list = [to]
    elif isinstance(to, list) and all(isinstance(x, str) for x in to):
        to_list = to
    else:
        raise InboundError("'to' must be an address or a list of addresses")
    sender = _address(_str(body, "from", required=True))
    if "@" not in sender:
        raise InboundError("'from' is not an email address")
    return InboundEmail(
        sender=sender,
        recipients=tuple(a.strip() for _, a in getaddresses(to_list) if a),
        subject=_str(body, "subject"),
        text=_str(body, "text"),
        message_id=(message_ids(_str(body, "message_id")) or (None,))[0],
        in_reply_to=message_ids(_str(body, "in_reply_to")),
        references=message_ids(_str(body, "references")),
        headers=_headers(body.get("headers")),
    )
