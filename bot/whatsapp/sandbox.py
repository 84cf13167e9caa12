"""The WhatsApp sandbox: play a prospect against the running service without Meta.

``POST /api/sandbox/whatsapp/messages`` with ``{"from": "+14155550123", "text": "hi"}`` or
``{"from": ..., "choice": "need:build"}`` (optional ``"name"``, ``"wait": false``) builds a
real Cloud-API-shaped webhook body and feeds it through the same path as Meta's (parse,
inbox, processor). With ``wait`` (the default) it answers once the turn is handled, with the
bot's replies. ``GET /api/sandbox/whatsapp/messages?phone=`` lists every reply to that
phone from the outbox. Both sit under ``/api`` (bearer token) and refuse to run when a real
WhatsApp channel is configured: sandbox messages must never reach real people.

Sandbox prospects live apart from real ones: the leads the sandbox makes are marked (source
``sandbox``, from the sandbox's own business number id), and both endpoints refuse (409) a
number that belongs to a real lead: a sandbox "STOP" must never opt out a lead that came
through the API, a form or a real chat, nor cancel its follow-ups, nor read its messages.
A real lead arriving with a sandbox prospect's number takes it over
(:mod:`scheduler.pipeline.sandbox_leads`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aiohttp import web

from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.errors import ApiError, read_json_object
from bot.whatsapp.attribution import SANDBOX_PHONE_ID
from bot.whatsapp.envelope import parse_object
from bot.whatsapp.keys import INBOX, WRITER
from scheduler.errors import InvalidLeadError
from scheduler.pipeline.contacts import normalize_phone
from scheduler.pipeline.sandbox_leads import SANDBOX_SOURCE
from scheduler.store import outbox as outbox_store
from scheduler.store.leads import by_phone

PATH = "/api/sandbox/whatsapp/messages"
routes = web.RouteTableDef()


def cloud_api_body(
    wa_id: str, *, text: str | None = None, choice: str | None = None, name: str | None = None
) -> tuple[str, dict[str, Any]]:
    """A Cloud API webhook body carrying one message from ``wa_id``; returns (wamid, body)."""
    wamid = f"wamid.sandbox.{uuid.uuid4().hex}"
    message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": str(int(time.time()))}
    if choice is not None:
        message["type"] = "interactive"
        message["interactive"] = {
            "type": "button_reply",
            "button_reply": {"id": choice, "title": choice[:20]},
        }
    else:
        message["type"] = "text"
        message["text"] = {"body": text or ""}
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": SANDBOX_PHONE_ID},
        "contacts": [{"profile": {"name": name or "Sandbox"}, "wa_id": wa_id}],
        "messages": [message],
    }
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "sandbox-waba", "changes": [{"field": "messages", "value": value}]}],
    }
    return wamid, body


def _phone(request: web.Request, raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ApiError(400, "invalid", "'from' / 'phone' must be a phone number")
    try:
        return normalize_phone(raw, request.app[SETTINGS].default_region)
    except InvalidLeadError as exc:
        raise ApiError(400, "invalid", str(exc)) from None


async def _sandbox_only(request: web.Request, phone: str) -> None:
    """Refuse a number that belongs to a lead the sandbox did not make."""
    async with request.app[SESSIONS]() as db:
        found = await by_phone(db, phone)
    if found is not None and found[1] != SANDBOX_SOURCE:
        raise ApiError(
            409,
            "real_lead",
            f"lead {found[0]} has this number: the sandbox only plays prospects of its own "
            "(use a number no real lead has)",
        )


def _enabled(request: web.Request) -> None:
    if request.app[SETTINGS].whatsapp_token.get_secret_value():
        raise ApiError(
            409, "sandbox_disabled", "a real WhatsApp channel is configured; the sandbox is off"
        )


@routes.post(PATH)
async def post_message(request: web.Request) -> web.Response:
    """Inject one prospect message; with ``wait``, return the bot's replies to it."""
    _enabled(request)
    data = await read_json_object(request)
    phone = _phone(request, data.get("from"))
    await _sandbox_only(request, phone)
    text, choice, name = data.get("text"), data.get("choice"), data.get("name")
    if (text is None) == (choice is None):
        raise ApiError(400, "invalid", "give exactly one of 'text' and 'choice'")
    for field, value in (("text", text), ("choice", choice), ("name", name)):
        if value is not None and (not isinstance(value, str) or len(value) > 4096):
            raise ApiError(400, "invalid", f"'{field}' must be a string of at most 4096 chars")
    wait = data.get("wait", True)
    sessions = request.app[SESSIONS]
    async with sessions() as db:
        before = await outbox_store.last_id(db)
    wamid, body = cloud_api_body(phone.lstrip("+"), text=text, choice=choice, name=name)
    result = await request.app[WRITER].write(parse_object(body))
    processor = request.app[INBOX]
    processor.kick(*result.senders)
    if not wait:
        return web.json_response({"wamid": wamid}, status=202)
    try:
        await processor.settle(timeout=30)
    except TimeoutError:
        raise ApiError(504, "timeout", "the bot did not answer in time") from None
    replies = await _replies(request, phone, after_id=int(before or 0))
    return web.json_response({"wamid": wamid, "replies": replies})


@routes.get(PATH)
async def list_messages(request: web.Request) -> web.Response:
    """Every WhatsApp message the bot queued for ``?phone=``, oldest first."""
    _enabled(request)
    phone = _phone(request, request.query.get("phone"))
    await _sandbox_only(request, phone)
    return web.json_response({"phone": phone, "messages": await _replies(request, phone)})


async def _replies(request: web.Request, phone: str, after_id: int = 0) -> list[dict[str, Any]]:
    async with request.app[SESSIONS]() as db:
        rows = await outbox_store.to_recipient(db, "whatsapp", phone, after_id=after_id)
        return [
            {
                "id": row.id,
                "key": row.key,
                "state": row.state,
                "payload": row.payload,
                "created_at": row.created_at.isoformat(),
            }
            for row in rows
        ]
