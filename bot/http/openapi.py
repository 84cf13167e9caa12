"""``GET /api/openapi.json``: the OpenAPI 3.1 description of the JSON API.

The document is a data file beside this module (``openapi.json``, shipped in the wheel), written
by hand and kept in step with the registered routes by ``tests/bot/test_openapi.py``. It sits
behind the same bearer token as the rest of ``/api/``: the rule "every ``/api/`` path needs the
token" stays without an exception, and a client generator is given the token anyway.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from aiohttp import web

SPEC_FILE = Path(__file__).with_name("openapi.json")
routes = web.RouteTableDef()


@cache
def spec_bytes() -> bytes:
    """The document's bytes, read once (it does not change while the service runs)."""
    return SPEC_FILE.read_bytes()


@routes.get("/api/openapi.json")
async def openapi_json(_request: web.Request) -> web.Response:
    """The OpenAPI document, as stored."""
    return web.Response(body=spec_bytes(), content_type="application/json")
