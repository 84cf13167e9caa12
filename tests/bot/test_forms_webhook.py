"""``POST /webhooks/forms/{source}``: submissions of Typeform, Tally, Webflow, HTML forms and
Apps Script become leads through the same intake as ``POST /api/leads``, signed or bearer
authenticated (checked before the body is read), with the source's field mapping."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import create_app
from bot.http.form_config import FormsConfigError, load_forms
from bot.http.forms import signature_headers
from tests.bot.support import API_TOKEN, AUTH, make_settings

Client = TestClient[Any, Any]
SECRET = "typeform-secret-123"

FORMS_FILE = f"""
forms:
  demo:
    preset: typeform
    signing_secret: {SECRET}
  sheet:
    source: google-forms
    token: sheet-token-0123456789
    fields:
      "Work email": email
      "How big is your team?": answers.company_size
      "Internal id": ignore
  broken-preset:
    preset: tally
"""

TYPEFORM = {
    "event_id": "01HX",
    "event_type": "form_response",
    "form_response": {
        "form_id": "abc",
        "hidden": {"utm_source": "linkedin"},
        "definition": {
            "fields": [
                {"id": "f1", "ref": "work_email", "type": "email", "title": "Your work email"},
                {"id": "f2", "ref": "name", "type": "short_text", "title": "What's your name?"},
                {
                    "id": "f3",
                    "ref": "size",
                    "type": "multiple_choice",
                    "title": "How many people work at your company?",
                },
                {"id": "f4", "ref": "message", "type": "long_text", "title": "Anything else?"},
            ]
        },
        "answers": [
            {"type": "email", "email": "dana@northwind.example", "field": {"id": "f1"}},
            {"type": "text", "text": "Dana Whitfield", "field": {"id": "f2", "ref": "name"}},
            {"type": "choice", "choice": {"label": "51-200"}, "field": {"id": "f3"}},
            {"type": "text", "text": "We need a portal", "field": {"id": "f4", "ref": "message"}},
        ],
    },
}

TALLY = {
    "eventType": "FORM_RESPONSE",
    "data": {
        "formName": "Contact",
        "fields": [
            {"key": "q1", "label": "First name", "type": "INPUT_TEXT", "value": "René"},
            {"key": "q2", "label": "Last name", "type": "INPUT_TEXT", "value": "Dubois"},
            {"key": "q3", "label": "Where to reach you", "type": "INPUT_EMAIL", "value": "r@d.fr"},
            {
                "key": "q4",
                "label": "Team size",
                "type": "MULTIPLE_CHOICE",
                "value": ["o2"],
                "options": [{"id": "o1", "text": "1-10"}, {"id": "o2", "text": "11-50"}],
            },
            {"key": "q5", "label": "utm_campaign", "type": "HIDDEN_FIELDS", "value": "spring"},
        ],
    },
}


@pytest.fixture
async def service(
    engine: AsyncEngine, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> Client:
    path = tmp_path / "forms.yaml"
    path.write_text(FORMS_FILE)
    settings = make_settings(max_body_bytes=64 * 1024, first_touch=False, forms_file=path)
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


async def post(
    client: Client, source: str, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    response = await client.post(f"/webhooks/forms/{source}", data=body, headers=headers)
    return response.status, await response.json()


async def detail(client: Client, lead_id: int) -> dict[str, Any]:
    response = await client.get(f"/api/leads/{lead_id}", headers=AUTH)
    body: dict[str, Any] = await response.json()
    return body


async def lead_count(client: Client) -> int:
    body = await (await client.get("/api/leads", headers=AUTH)).json()
    return len(body["leads"])


async def test_a_signed_typeform_submission_becomes_a_lead(service: Client) -> None:
    raw = json.dumps(TYPEFORM).encode()
    headers = {"Typeform-Signature": signature_headers(SECRET, raw)["Typeform-Signature"]}
    status, body = await post(service, "demo", raw, headers)
    assert status == 201, body
    lead = body["lead"]
    assert (lead["name"], lead["email"], lead["source"]) == (
        "Dana Whitfield",
        "dana@northwind.example",
        "demo",
    )
    assert lead["attribution"] == {"utm_source": "linkedin"}
    [form] = (await detail(service, lead["id"]))["forms"]
    assert form["message"] == "We need a portal"
    assert form["answers"] == {"How many people work at your company?": "51-200"}
    again, body = await post(service, "demo", raw, headers)
    assert (again, body["created"]) == (200, False)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "signature_missing"),
        ({"Typeform-Signature": "sha256=AAAA"}, 403, "signature_mismatch"),
        ({"Authorization": f"Bearer {API_TOKEN}"}, 401, "signature_missing"),  # must be signed
    ],
)
async def test_a_signed_source_refuses_unsigned_or_forged_bodies_before_parsing(
    service: Client, headers: dict[str, str], status: int, code: str
) -> None:
    for raw in (json.dumps(TYPEFORM).encode(), b"{not json"):
        got, body = await post(service, "demo", raw, headers)
        assert (got, body["error"]["code"]) == (status, code)
    assert await lead_count(service) == 0


async def test_a_signature_over_other_bytes_is_refused(service: Client) -> None:
    raw = json.dumps(TYPEFORM).encode()
    signed = signature_headers(SECRET, raw + b" ")
    status, body = await post(service, "demo", raw, {"X-Signature-256": signed["X-Signature-256"]})
    assert (status, body["error"]["code"]) == (403, "signature_mismatch")


async def test_tally_with_the_api_token_detects_its_preset(service: Client) -> None:
    status, body = await post(service, "tally-contact", json.dumps(TALLY).encode(), AUTH)
    assert status == 201, body
    lead = body["lead"]
    assert (lead["name"], lead["email"], lead["source"]) == (
        "René Dubois",
        "r@d.fr",
        "tally-contact",
    )
    assert lead["attribution"] == {"utm_campaign": "spring"}
    [form] = (await detail(service, lead["id"]))["forms"]
    assert form["answers"] == {"Team size": "11-50"}


async def test_a_mapped_apps_script_form_with_its_own_token(service: Client) -> None:
    body = {
        "Work email": "ann@acme.example",
        "Full Name": "Ann Lee",
        "How big is your team?": "about 40",
        "Internal id": "8812",
        "Message": "Call me",
    }
    raw = json.dumps(body).encode()
    status, _ = await post(service, "sheet", raw, AUTH)  # the API token is not this form's
    assert status == 403
    status, created = await post(
        service, "sheet", raw, {"Authorization": "Bearer sheet-token-0123456789"}
    )
    assert status == 201, created
    lead = created["lead"]
    assert (lead["name"], lead["email"], lead["source"]) == (
        "Ann Lee",
        "ann@acme.example",
        "google-forms",
    )
    [form] = (await detail(service, lead["id"]))["forms"]
    assert (form["message"], form["answers"]) == ("Call me", {"company_size": "about 40"})


async def test_webflow_and_a_plain_html_form(service: Client) -> None:
    webflow = {
        "triggerType": "form_submission",
        "payload": {"name": "Contact", "data": {"Name": "Bo", "Email": "bo@x.example"}},
    }
    status, body = await post(service, "webflow", json.dumps(webflow).encode(), AUTH)
    assert status == 201 and body["lead"]["name"] == "Bo"
    html = "first_name=Zo%C3%AB&last_name=Ray%00&email=zoe%40x.example&phone=&utm_source=ads"
    headers = {**AUTH, "Content-Type": "application/x-www-form-urlencoded"}
    status, body = await post(service, "site", html.encode(), headers)
    assert status == 201, body
    assert (body["lead"]["name"], body["lead"]["attribution"]) == (
        "Zoë Ray",
        {"utm_source": "ads"},
    )


@pytest.mark.parametrize(
    "case",
    [
        ("site", b"{not json", "application/json", 400, "malformed_json"),
        ("site", b"[1, 2]", "application/json", 400, "malformed_json"),
        ("site", b'{"nested": {"a": 1}}', "application/json", 400, "malformed_form"),
        ("site", b"a=%ZZ&&", "application/x-www-form-urlencoded", 400, "malformed_form"),
        ("broken-preset", b'{"data": {"fields": 3}}', "application/json", 400, "malformed_form"),
        ("site", b'{"name": "No Contact"}', "application/json", 422, "invalid_lead"),
        ("site", b'{"email": "not-an-email"}', "application/json", 422, "invalid_lead"),
    ],
)
async def test_bad_bodies_are_json_errors(
    service: Client, case: tuple[str, bytes, str, int, str]
) -> None:
    source, raw, content_type, status, code = case
    got, body = await post(service, source, raw, {**AUTH, "Content-Type": content_type})
    assert (got, body["error"]["code"]) == (status, code)
    assert await lead_count(service) == 0


async def test_missing_or_wrong_bearer(service: Client) -> None:
    raw = json.dumps({"email": "a@b.example"}).encode()
    assert (await post(service, "site", raw, {}))[0] == 401
    assert (await post(service, "site", raw, {"Authorization": "Bearer nope"}))[0] == 403
    assert (await post(service, "bad name!", raw, AUTH))[0] == 404


def test_a_forms_file_with_an_unknown_target_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("forms:\n  x:\n    fields:\n      Email: e_mail\n")
    with pytest.raises(FormsConfigError, match="unknown target"):
        load_forms(path)
