"""WhatsApp's message limits, checked before anything is sent.

pywa does not check them (it builds whatever it is given) and the Graph API rejects an
oversized message only after the request, so an outbox payload that breaks a limit is
refused here as a permanent failure: retrying the same payload could never succeed.

A payload is one of the outbox kinds (``bot/whatsapp/payloads.py`` describes them):
``text``, ``buttons``, ``list``, ``cta_url`` and ``template``. Keys other than the ones a
kind uses are ignored, so callers may carry their own metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scheduler.delivery.channels import PayloadError

# Limits from Meta's Cloud API reference (messages, interactive objects, templates).
TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
BUTTONS_MAX = 3
BUTTON_TITLE_MAX = 20
BUTTON_ID_MAX = 256
LIST_BUTTON_MAX = 20
ROWS_MAX = 10
ROW_TITLE_MAX = 24
ROW_DESCRIPTION_MAX = 72
ROW_ID_MAX = 200
CTA_TITLE_MAX = 20
URL_MAX = 2000
TEMPLATE_PARAM_MAX = 1024
# Template parameters may not contain new lines, tabs or more than four spaces in a row.
_BAD_TEMPLATE_PARAM = re.compile(r"[\n\t]| {5,}")
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")

FREE_FORM_KINDS = frozenset({"text", "buttons", "list", "cta_url"})
KINDS = FREE_FORM_KINDS | {"template"}


class WhatsAppPayloadError(PayloadError):
    """The payload cannot be sent as it is; the message says which limit it breaks."""


@dataclass(frozen=True, slots=True)
class Choice:
    """A reply button or a list row."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A validated payload, in the shape the sender needs."""

    kind: str
    text: str
    choices: tuple[Choice, ...] = ()
    button: str = ""  # the list's menu button, or the CTA's display text
    url: str = ""
    template: str = ""
    language: str = ""
    params: tuple[str, ...] = ()

    @property
    def is_free_form(self) -> bool:
        """Anything but a template: allowed only inside the 24-hour service window."""
        return self.kind in FREE_FORM_KINDS


def _string(payload: Mapping[str, Any], key: str, *, limit: int, what: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise WhatsAppPayloadError(f"{what} ({key!r}) must be a non-empty string")
    if len(value) > limit:
        raise WhatsAppPayloadError(f"{what} is {len(value)} characters; WhatsApp allows {limit}")
    return value


def _choices(
    items: Any,
    *,
    most: int,
    title_max: int,
    id_max: int,
    what: str,
    described: bool,
) -> tuple[Choice, ...]:
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise WhatsAppPayloadError(f"{what}s must be a non-empty list")
    if len(items) > most:
        raise WhatsAppPayloadError(f"{len(items)} {what}s; WhatsApp allows {most}")
    choices = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise WhatsAppPayloadError(f"{what} {index} must be an object with id and title")
        label = f"{what} {index} title"
        choice_id = _string(item, "id", limit=id_max, what=f"{what} {index} id")
        title = _string(item, "title", limit=title_max, what=label)
        description = None
        if described and item.get("description"):
            description = _string(
                item, "description", limit=ROW_DESCRIPTION_MAX, what=f"{what} {index} description"
            )
        choices.append(Choice(choice_id, title, description))
    if len({c.id for c in choices}) != len(choices):
        raise WhatsAppPayloadError(f"{what} ids must be unique")
    if len({c.title for c in choices}) != len(choices):
        raise WhatsAppPayloadError(f"{what} titles must be unique")
    return tuple(choices)


def _url(payload: Mapping[str, Any]) -> str:
    url = _string(payload, "url", limit=URL_MAX, what="the link")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WhatsAppPayloadError(f"the link must be an http(s) URL, got {url!r}")
    return url


def _params(items: Any) -> tuple[str, ...]:
    if items is None:
        return ()
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise WhatsAppPayloadError("template params must be a list of strings")
    params = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise WhatsAppPayloadError(f"template param {index} must be a non-empty string")
        if len(item) > TEMPLATE_PARAM_MAX:
            raise WhatsAppPayloadError(
                f"template param {index} exceeds {TEMPLATE_PARAM_MAX} characters"
            )
        if _BAD_TEMPLATE_PARAM.search(item):
            raise WhatsAppPayloadError(
                f"template param {index} has a new line, a tab or more than 4 spaces in a row"
            )
        params.append(item)
    return tuple(params)


def parse_payload(payload: Mapping[str, Any]) -> Outgoing:
    """Validate an outbox payload against WhatsApp's limits; raise
    :class:`WhatsAppPayloadError`."""
    kind = payload.get("kind", "text")
    if kind not in KINDS:
        raise WhatsAppPayloadError(
            f"unknown payload kind {kind!r}; expected one of {sorted(KINDS)}"
        )
    if kind == "text":
        return Outgoing("text", _string(payload, "text", limit=TEXT_BODY_MAX, what="the text"))
    if kind == "template":
        name = payload.get("template")
        if not isinstance(name, str) or not _TEMPLATE_NAME.match(name):
            raise WhatsAppPayloadError(f"template name must match [a-z0-9_]+, got {name!r}")
        language = _string(payload, "language", limit=15, what="the template language")
        text = payload.get("text")
        return Outgoing(
            "template",
            text if isinstance(text, str) else "",
            template=name,
            language=language,
            params=_params(payload.get("params")),
        )
    body = _string(payload, "text", limit=INTERACTIVE_BODY_MAX, what="the message body")
    if kind == "buttons":
        buttons = _choices(
            payload.get("buttons"),
            most=BUTTONS_MAX,
            title_max=BUTTON_TITLE_MAX,
            id_max=BUTTON_ID_MAX,
            what="button",
            described=False,
        )
        return Outgoing("buttons", body, choices=buttons)
    if kind == "list":
        label = _string(payload, "button", limit=LIST_BUTTON_MAX, what="the list button")
        rows = _choices(
            payload.get("rows"),
            most=ROWS_MAX,
            title_max=ROW_TITLE_MAX,
            id_max=ROW_ID_MAX,
            what="row",
            described=True,
        )
        return Outgoing("list", body, choices=rows, button=label)
    title = _string(payload, "title", limit=CTA_TITLE_MAX, what="the link button title")
    return Outgoing("cta_url", body, button=title, url=_url(payload))
