"""JSON errors for every failure the HTTP service can have.

Every error leaves as ``{"error": {"code": "...", "message": "..."}}`` with a fitting status.
Unexpected exceptions are logged with their traceback and answered with a bare 500: a stack
trace never reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.http.inputs import RequestInputError, loads
from dialogs.errors import InputError, LeadbotError
from scheduler.errors import StoreError

log = logging.getLogger("leadbot.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# aiohttp's own HTTP exceptions, named for the JSON body.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


class ApiError(LeadbotError):
    """An error the API reports to the client as is."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


class WebhookSignatureError(InputError):
    """A webhook body's signature (WhatsApp's ``X-Hub-Signature-256``, Calendly's
    ``Calendly-Webhook-Signature``) is missing or unreadable (``status`` 401), or wrong or
    stale (403); ``code`` names which, for the JSON error body."""

    def __init__(self, message: str, *, status: int, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_response(status: int, code: str, message: str, **details: Any) -> web.Response:
    """The one shape of every error body."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, or a 400 :class:`ApiError` saying why not (webhooks call
    this on bytes they have already read to check a signature). Parsed and cleaned by
    :func:`bot.http.inputs.loads`: no 500 on deep nesting or huge numbers, no NUL in strings."""
    try:
        body = loads(raw)
    except RequestInputError as exc:
        raise ApiError(400, "malformed_json", str(exc)) from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object")
    return body


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 :class:`ApiError` saying why not.

    The Content-Type is not enforced: form builders and no-code tools often send JSON
    labelled as something else, and the body itself is what must be right.
    """
    return parse_json_object(await request.read())


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every exception into the JSON error shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.details)
    except StoreError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _STATUS_CODES.get(exc.status, "http_error")
        response = error_response(exc.status, code, exc.reason)
        if exc.status == 405:
            response.headers["Allow"] = exc.headers.get("Allow", "")
        return response
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; see the server log")
