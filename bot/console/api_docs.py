"""``/docs``: the JSON API's reference, read from its OpenAPI document, for signed-in users.

The document itself stays behind the bearer token at ``/api/openapi.json`` (for client
generators); this page lists its operations (method, path, summary, parameters, answers)
so a person can find their way without a token or a CDN-hosted viewer.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aiohttp import web

from bot.console.render import render
from bot.http.openapi import spec_bytes

routes = web.RouteTableDef()
METHODS = ("get", "post", "put", "patch", "delete")


@cache
def operations() -> list[dict[str, Any]]:
    """Every operation of the document, in its order: method, path, summary, parameters
    and answers (status and description)."""
    spec = json.loads(spec_bytes())
    shared = spec.get("components", {}).get("responses", {})
    found = []
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            answers = []
            for status, given in op.get("responses", {}).items():
                answer = (
                    shared.get(given["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in given else given
                )
                answers.append((status, answer.get("description", "")))
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": op.get("summary", ""),
                    "description": op.get("description", ""),
                    "parameters": [
                        (p.get("name"), p.get("in"), p.get("description", ""))
                        for p in item.get("parameters", []) + op.get("parameters", [])
                    ],
                    "body": "requestBody" in op,
                    "answers": answers,
                }
            )
    return found


@routes.get("/console/api")
async def api_docs(request: web.Request) -> web.Response:
    """The API reference page."""
    spec = json.loads(spec_bytes())
    return render(request, "api_docs.html", {"info": spec["info"], "operations": operations()})


@routes.get("/docs")
async def docs_redirect(_request: web.Request) -> web.StreamResponse:
    """``/docs`` is where people look first."""
    raise web.HTTPFound("/console/api")
