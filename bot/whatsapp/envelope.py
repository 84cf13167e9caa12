"""Our parser of the WhatsApp Cloud API webhook envelope.

pywa 4.5 reads only ``entry[0].changes[0].value.messages[0]`` (and ``statuses[0]``) of a
body, silently dropping the rest of a batch, and raises ``KeyError`` on contacts without a
BSUID. So inbound bodies are parsed here: EVERY entry, change, message and status becomes a
frozen dataclass. Unknown message types never fail the parse (they become ``unsupported``);
only a body whose *structure* is wrong raises :class:`EnvelopeError` (the webhook answers 400
and stores nothing). Every string is cleaned on the way in (:func:`bot.http.inputs.clean_text`:
no NUL, which PostgreSQL refuses and which failed the turn until it was given up); message
and status ids longer than :data:`MAX_ID_BYTES` and sender ids longer than
:data:`MAX_SENDER` are a structure error, so everything parsed fits its column whole.

Shape (see ``tests/data/whatsapp/*.json``)::

    {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": [{"field":
     "messages", "value": {"metadata": {...}, "contacts": [...], "messages": [...],
     "statuses": [...]}}]}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from bot.http.inputs import RequestInputError, clean_text, loads
from dialogs.errors import InputError
from scheduler.pipeline.identity import BSUID_SENDER

Kind = Literal["text", "choice", "media", "unsupported", "welcome", "ignored"]

MEDIA_TYPES = frozenset(
    {"image", "audio", "video", "document", "sticker", "location", "contacts", "reaction", "order"}
)
IGNORED_TYPES = frozenset({"edit", "revoke", "system"})
# Meta documents no maximum for a wamid (seen: 50-100 characters); the columns hold 1024.
MAX_ID_BYTES = 1024
MAX_SENDER = 250  # wa_id / BSUID: inbox.sender is 320 with its "+" or "bsuid:" prefix
MAX_NAME = 200  # a profile name becomes the lead's name (200 characters)


class EnvelopeError(InputError, ValueError):
    """The body is not a webhook envelope we can read (not JSON, or the wrong shape)."""


@dataclass(frozen=True, slots=True)
class Referral:
    """Where a Click-to-WhatsApp ad click came from (first message after the click only)."""

    source_id: str | None = None
    source_url: str | None = None
    source_type: str | None = None
    headline: str | None = None
    body: str | None = None
    media_type: str | None = None
    ctwa_clid: str | None = None

    def attribution(self) -> dict[str, str]:
        """The non-empty fields, for ``Lead.attribution``."""
        return {f"ad_{k}" if k != "ctwa_clid" else k: v for k, v in _fields(self) if v}


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a person sent us.

    ``kind`` is what the bot does with it: ``text`` (``text`` set), ``choice`` (a tapped
    button / list row / template quick reply: ``choice_id``), ``media`` (``media_kind``: an
    image, voice note, sticker, location, reaction ...; ``text`` holds a caption if any),
    ``unsupported`` (a type WhatsApp or we cannot show), ``welcome`` (the person opened the
    chat for the first time) or ``ignored`` (edits, revokes, system notices).
    """

    id: str
    type: str
    kind: Kind
    timestamp: datetime
    wa_id: str | None = None
    user_id: str | None = None  # the BSUID; may be the only identity a person shares
    name: str | None = None
    phone_number_id: str | None = None
    text: str | None = None
    choice_id: str | None = None
    choice_title: str | None = None
    media_kind: str | None = None
    context_id: str | None = None  # the message of ours this one replies to
    referral: Referral | None = None

    @property
    def sender(self) -> str:
        """Who sent it, as the inbox stores it: ``+<wa_id>`` (E.164), else ``bsuid:<id>``."""
        if self.wa_id:
            return f"+{self.wa_id.lstrip('+')}"
        return f"{BSUID_SENDER}{self.user_id}"

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict (the inbox row's payload); :meth:`from_json` reverses it."""
        data = {k: v for k, v in _fields(self) if k not in ("timestamp", "referral")}
        data["timestamp"] = self.timestamp.isoformat()
        data["referral"] = dict(_fields(self.referral)) if self.referral else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InboundMessage:
        """Rebuild a message stored with :meth:`to_json`."""
        values = dict(data)
        values["timestamp"] = datetime.fromisoformat(values["timestamp"])
        referral = values.get("referral")
        values["referral"] = Referral(**referral) if referral else None
        return cls(**values)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """What happened to a message we sent: ``sent``, ``delivered``, ``read``, ``failed``..."""

    id: str
    status: str
    timestamp: datetime
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    error_codes: tuple[int, ...] = ()
    error_title: str | None = None
    callback_data: str | None = None  # biz_opaque_callback_data we attached when sending


@dataclass(frozen=True, slots=True)
class Envelope:
    """Everything one webhook body carried, in body order."""

    messages: tuple[InboundMessage, ...] = field(default=())
    statuses: tuple[StatusUpdate, ...] = field(default=())


def parse_envelope(raw: bytes | str) -> Envelope:
    """Parse a webhook body; raise :class:`EnvelopeError` naming what is wrong."""
    try:
        body = orjson.loads(raw)  # orjson: this runs on every webhook
    except orjson.JSONDecodeError as exc:  # bad UTF-8 included
        if "surrogate" not in str(exc):
            raise EnvelopeError(f"the body is not valid JSON: {exc}") from None
        try:  # a lone "\ud83d" (a name cut mid-emoji) is valid JSON: read it, replaced
            body = loads(raw)
        except RequestInputError as error:
            raise EnvelopeError(str(error)) from None
    return parse_object(body)


def parse_object(body: Any) -> Envelope:
    """Parse an already decoded webhook body (see :func:`parse_envelope`)."""
    if not isinstance(body, dict):
        raise EnvelopeError("the body must be a JSON object")
    messages: list[InboundMessage] = []
    statuses: list[StatusUpdate] = []
    for e, entry in enumerate(_list(body, "entry", "body")):
        where = f"entry[{e}]"
        if not isinstance(entry, dict):
            raise EnvelopeError(f"{where} must be an object")
        for c, change in enumerate(_list(entry, "changes", where)):
            cwhere = f"{where}.changes[{c}]"
            if not isinstance(change, dict):
                raise EnvelopeError(f"{cwhere} must be an object")
            value = change.get("value")
            if not isinstance(value, dict):
                raise EnvelopeError(f"{cwhere}.value must be an object")
            if change.get("field", "messages") != "messages":
                continue  # account/template updates: not ours to handle here
            _parse_value(value, cwhere + ".value", messages, statuses)
    return Envelope(tuple(messages), tuple(statuses))


def _parse_value(
    value: dict[str, Any],
    where: str,
    messages: list[InboundMessage],
    statuses: list[StatusUpdate],
) -> None:
    metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
    phone_number_id = _str(metadata.get("phone_number_id")) if metadata else None
    contacts = [c for c in _list(value, "contacts", where, required=False) if isinstance(c, dict)]
    for m, raw in enumerate(_list(value, "messages", where, required=False)):
        messages.append(_message(raw, f"{where}.messages[{m}]", contacts, phone_number_id))
    for s, raw in enumerate(_list(value, "statuses", where, required=False)):
        statuses.append(_status(raw, f"{where}.statuses[{s}]"))


def _message(
    raw: Any, where: str, contacts: list[dict[str, Any]], phone_number_id: str | None
) -> InboundMessage:
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{where} must be an object")
    wamid = _id(raw, where)
    wa_id = _str(raw.get("from"))
    user_id = _str(raw.get("from_user_id")) or _str(raw.get("user_id"))
    contact = _contact_for(contacts, wa_id, user_id)
    if contact is not None:
        wa_id = wa_id or _str(contact.get("wa_id"))
        user_id = user_id or _str(contact.get("user_id"))
    if not wa_id and not user_id:
        raise EnvelopeError(f"{where} has no sender (neither 'from' nor a contact user_id)")
    if len(wa_id or "") > MAX_SENDER or len(user_id or "") > MAX_SENDER:
        raise EnvelopeError(f"{where} has a sender id longer than {MAX_SENDER} characters")
    profile = contact.get("profile") if contact else None
    name = _str(profile.get("name")) if isinstance(profile, dict) else None
    name = name[:MAX_NAME] if name else None
    mtype = _str(raw.get("type")) or "unknown"
    context = raw.get("context") if isinstance(raw.get("context"), dict) else None
    referral = raw.get("referral") if isinstance(raw.get("referral"), dict) else None
    base: dict[str, Any] = {
        "id": wamid,
        "type": mtype,
        "timestamp": _timestamp(raw.get("timestamp"), where),
        "wa_id": wa_id,
        "user_id": user_id,
        "name": name,
        "phone_number_id": phone_number_id,
        "context_id": _str(context.get("id")) if context else None,
        "referral": _referral(referral) if referral else None,
    }
    return InboundMessage(**base, **_content(mtype, raw))


def _content(mtype: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The kind-specific fields of a message of type ``mtype``."""
    found = raw.get(mtype)
    inner: dict[str, Any] = found if isinstance(found, dict) else {}
    if mtype == "text":
        body = _str(inner.get("body"))
        if body is None:
            return {"kind": "unsupported", "media_kind": "text"}
        return {"kind": "text", "text": body}
    if mtype == "interactive":
        itype = _str(inner.get("type"))
        reply = inner.get(itype) if itype and isinstance(inner.get(itype), dict) else None
        if itype in ("button_reply", "list_reply") and reply and _str(reply.get("id")):
            return {
                "kind": "choice",
                "choice_id": _str(reply.get("id")),
                "choice_title": _str(reply.get("title")),
            }
        # nfm_reply (flows) and anything newer: we cannot read it yet.
        return {"kind": "unsupported", "media_kind": f"interactive:{itype or 'unknown'}"}
    if mtype == "button":  # a template's quick-reply button
        payload = _str(inner.get("payload")) or _str(inner.get("text"))
        if payload is None:
            return {"kind": "unsupported", "media_kind": "button"}
        return {"kind": "choice", "choice_id": payload, "choice_title": _str(inner.get("text"))}
    if mtype in MEDIA_TYPES:
        return {"kind": "media", "media_kind": mtype, "text": _str(inner.get("caption"))}
    if mtype == "request_welcome":
        return {"kind": "welcome"}
    if mtype in IGNORED_TYPES:
        return {"kind": "ignored"}
    return {"kind": "unsupported", "media_kind": mtype}


def _status(raw: Any, where: str) -> StatusUpdate:
    if not isinstance(raw, dict):
        raise EnvelopeError(f"{where} must be an object")
    errors = [e for e in raw.get("errors") or [] if isinstance(e, dict)]
    codes = tuple(int(e["code"]) for e in errors if isinstance(e.get("code"), int))
    return StatusUpdate(
        id=_id(raw, where),
        status=_required_str(raw, "status", where),
        timestamp=_timestamp(raw.get("timestamp"), where),
        recipient_id=_str(raw.get("recipient_id")),
        recipient_user_id=_str(raw.get("recipient_user_id")),
        error_codes=codes,
        error_title=_str(errors[0].get("title")) if errors else None,
        callback_data=_str(raw.get("biz_opaque_callback_data")),
    )


def _referral(raw: dict[str, Any]) -> Referral:
    return Referral(
        source_id=_str(raw.get("source_id")),
        source_url=_str(raw.get("source_url")),
        source_type=_str(raw.get("source_type")),
        headline=_str(raw.get("headline")),
        body=_str(raw.get("body")),
        media_type=_str(raw.get("media_type")),
        ctwa_clid=_str(raw.get("ctwa_clid")),
    )


def _contact_for(
    contacts: list[dict[str, Any]], wa_id: str | None, user_id: str | None
) -> dict[str, Any] | None:
    for contact in contacts:
        if (wa_id and contact.get("wa_id") == wa_id) or (
            user_id and contact.get("user_id") == user_id
        ):
            return contact
    # A single contact with no matching id is still the sender (username-only users).
    return contacts[0] if len(contacts) == 1 and not wa_id else None


def _list(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> list[Any]:
    value = obj.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise EnvelopeError(f"{where}.{key} must be a list")
    return value


def _str(value: Any) -> str | None:
    if isinstance(value, str):
        return clean_text(value) or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _required_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = _str(obj.get(key))
    if value is None:
        raise EnvelopeError(f"{where}.{key} is missing")
    return value


def _id(obj: dict[str, Any], where: str) -> str:
    value = _required_str(obj, "id", where)
    if len(value.encode("utf-8", "replace")) > MAX_ID_BYTES:
        raise EnvelopeError(f"{where}.id is longer than {MAX_ID_BYTES} bytes")
    return value


def _timestamp(value: Any, where: str) -> datetime:
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise EnvelopeError(f"{where}.timestamp must be epoch seconds, got {value!r}") from None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise EnvelopeError(f"{where}.timestamp is out of range: {value!r}") from None


def _fields(obj: Any) -> list[tuple[str, Any]]:
    return [(name, getattr(obj, name)) for name in obj.__slots__]
