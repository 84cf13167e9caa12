"""The OpenAPI document (``bot/http/openapi.json``) is valid OpenAPI 3.1, served at
``/api/openapi.json`` behind the bearer token, and in step with the handlers: the same /api
paths and methods as the router, the same enums and request fields as the code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from pydantic import BaseModel

from bot.app import create_app
from bot.http.api_leads import TransitionIn
from bot.http.followups import ApproveIn, RejectIn
from bot.http.openapi import SPEC_FILE
from scheduler.pipeline.leads import LeadIn
from scheduler.stage_names import Stage
from scheduler.store.touches import TouchStatus
from tests.bot.support import AUTH, make_settings

METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def spec() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_FILE.read_text())
    return document


def app_api_routes() -> dict[str, set[str]]:
    """Every /api route the service registers: path template -> methods (HEAD, which
    aiohttp adds to every GET, left out)."""
    app = create_app(make_settings(), run_scheduler=False)  # routes only; never started
    found: dict[str, set[str]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if path.startswith("/api/") and route.method != "HEAD":
            found.setdefault(path, set()).add(route.method.lower())
    return found


def spec_routes() -> dict[str, set[str]]:
    return {path: set(item) & METHODS for path, item in spec()["paths"].items()}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = spec()
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_the_validator_would_catch_a_broken_document() -> None:
    broken = spec()
    broken["paths"]["/api/leads"]["get"]["parameters"][0]["in"] = "body"  # not an OpenAPI place
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_every_api_route_is_described_and_every_described_path_exists() -> None:
    registered = app_api_routes()
    assert "/api/leads" in registered  # the walk sees the routes at all
    assert spec_routes() == registered


def test_every_operation_needs_the_bearer_token() -> None:
    document = spec()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "LEADBOT_API_TOKEN",
    }
    assert document["security"] == [{"bearer": []}]
    for path, item in document["paths"].items():
        for method in set(item) & METHODS:
            operation = item[method]
            assert "security" not in operation, (path, method)  # no opt-out
            assert "401" in operation["responses"], (path, method)


def test_enums_are_the_code_s() -> None:
    schemas = spec()["components"]["schemas"]
    assert schemas["Stage"]["enum"] == [s.value for s in Stage]
    assert schemas["TouchStatus"]["enum"] == [s.value for s in TouchStatus]


@pytest.mark.parametrize(
    ("name", "model"),
    [
        ("LeadIn", LeadIn),
        ("TransitionIn", TransitionIn),
        ("ApproveIn", ApproveIn),
        ("RejectIn", RejectIn),
    ],
)
def test_request_bodies_have_the_model_s_fields(name: str, model: type[BaseModel]) -> None:
    schema = spec()["components"]["schemas"][name]
    assert set(schema["properties"]) == set(model.model_fields)
    assert set(schema.get("required", [])) == {
        field for field, info in model.model_fields.items() if info.is_required()
    }
    assert schema["additionalProperties"] is False  # every model says extra="forbid"
    assert model.model_config.get("extra") == "forbid"


async def test_served_at_api_openapi_json_with_the_token(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/openapi.json", headers=AUTH)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == spec()


async def test_not_served_without_the_token(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
