"""``POST /webhooks/forms/{source}``: a form tool's submission becomes a lead.

The same intake as ``POST /api/leads`` (same responses: 201 new, 200 existing, 422 not a
lead), fed by a preset that reads the tool's payload and the source's field mapping
(:mod:`bot.http.form_config`, :mod:`bot.http.form_payloads`). Trust is checked on the raw
bytes before anything is parsed:

- a source with a ``signing_secret`` must be signed: ``Typeform-Signature: sha256=<base64>``
  (Typeform), ``Tally-Signature: <base64>`` (Tally) or ``X-Signature-256: sha256=<hex>``
  (anything else: an Apps Script, a Zapier step), each the HMAC-SHA256 of the body;
- otherwise ``Authorization: Bearer`` with the source's ``token``, else ``LEADBOT_API_TOKEN``.

Missing credentials are 401, wrong ones 403; a body that is not JSON (or an HTML form's
``application/x-www-form-urlencoded``) or not the preset's shape is 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from bot.http.api_leads import accept_lead
from bot.http.appkeys import SETTINGS
from bot.http.errors import ApiError, parse_json_object
from bot.http.form_config import SOURCE_NAME, FormConfig, FormsConfigError, load_forms
from bot.http.form_payloads import items_of, lead_fields
from bot.http.inputs import clean_text

log = logging.getLogger("leadbot.forms")
routes = web.RouteTableDef()

FORM_ENCODED = "application/x-www-form-urlencoded"


def _digest(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def signature_headers(secret: str, body: bytes) -> dict[str, str]:
    """Every signature header a form tool might send for ``body`` (for tests and docs)."""
    digest = _digest(secret, body)
    b64 = base64.b64encode(digest).decode()
    return {
        "Typeform-Signature": f"sha256={b64}",
        "Tally-Signature": b64,
        "X-Signature-256": f"sha256={digest.hex()}",
    }


def check_signature(secret: str, body: bytes, headers: Any) -> None:
    """Accept ``body`` when one signature header it carries is right; 401 when it carries
    none, 403 when the one it carries is wrong."""
    expected = signature_headers(secret, body)
    present = [name for name in expected if headers.get(name)]
    if not present:
        names = ", ".join(expected)
        raise ApiError(401, "signature_missing", f"this form must be signed ({names})")
    name = present[0]
    given = headers[name].strip()
    if name == "X-Signature-256":
        given = given.lower()
    if not hmac.compare_digest(given.encode(), expected[name].encode()):
        raise ApiError(403, "signature_mismatch", f"{name} does not match the body")


def check_bearer(token: str, headers: Any) -> None:
    """Accept the request when it carries ``Authorization: Bearer <token>``."""
    if not token:
        raise ApiError(401, "unauthorized", "LEADBOT_API_TOKEN is not configured")
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise ApiError(401, "unauthorized", "missing bearer token")
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise ApiError(403, "forbidden", "wrong bearer token")


def parse_body(raw: bytes, content_type: str) -> dict[str, Any]:
    """The submission as an object: JSON, or an HTML form's URL-encoded fields."""
    if content_type == FORM_ENCODED:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise ApiError(400, "malformed_form", "not URL-encoded UTF-8 form fields") from None
        fields: dict[str, Any] = {}
        for key, value in pairs:  # cleaned as JSON bodies are: no NUL reaches the database
            fields.setdefault(clean_text(key), clean_text(value))
        return fields
    return parse_json_object(raw)


def _config(request: web.Request, source: str) -> FormConfig:
    try:
        forms = load_forms(request.app[SETTINGS].forms_file)
    except FormsConfigError as exc:
        log.error("%s", exc)
        raise ApiError(500, "forms_config", "the forms file is not valid; see the log") from None
    return forms.form(source)


@routes.post("/webhooks/forms/{source}")
async def form_submission(request: web.Request) -> web.Response:
    """One submission of the form named ``source``: authenticated, read, taken in."""
    source = request.match_info["source"]
    if not SOURCE_NAME.fullmatch(source):
        raise ApiError(404, "not_found", "no such form")
    config = _config(request, source)
    raw = await request.read()
    if config.signing_secret:
        check_signature(config.signing_secret, raw, request.headers)
    else:
        api_token = request.app[SETTINGS].api_token.get_secret_value()
        check_bearer(config.token or api_token, request.headers)
    body = parse_body(raw, request.content_type)
    return await accept_lead(request, lead_fields(items_of(body, config.preset), config, source))
