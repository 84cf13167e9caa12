"""The JSON API, black-box over HTTP, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.bot.support import AUTH

Client = TestClient[Any, Any]


async def post_lead(client: Client, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/leads", json=body, headers=AUTH)
    return response.status, await response.json()


def assert_error(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in str(body)


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "database": "ok"}


async def test_posting_the_same_lead_twice_yields_one_lead(client: Client) -> None:
    status1, body1 = await post_lead(
        client, name="Dana", email="Dana@Example.com", source="form", attribution={"utm": "x"}
    )
    status2, body2 = await post_lead(client, email="dana@example.com")
    assert (status1, status2) == (201, 200)
    assert (body1["created"], body2["created"]) == (True, False)
    assert body1["lead"]["id"] == body2["lead"]["id"]
    assert body1["lead"]["email"] == "dana@example.com"
    listing = await (await client.get("/api/leads", headers=AUTH)).json()
    assert [lead["id"] for lead in listing["leads"]] == [body1["lead"]["id"]]


async def test_illegal_transition_is_409_and_writes_no_audit_row(client: Client) -> None:
    _, created = await post_lead(client, phone="+1 415 555 0123")
    lead_id = created["lead"]["id"]
    response = await client.post(
        f"/api/leads/{lead_id}/transitions", json={"to": "won"}, headers=AUTH
    )
    assert response.status == 409
    assert_error(await response.json(), "illegal_transition")
    detail = await (await client.get(f"/api/leads/{lead_id}", headers=AUTH)).json()
    assert detail["lead"]["stage"] == "new"
    assert [(h["from"], h["to"]) for h in detail["history"]] == [(None, "new")]


async def test_transitions_are_applied_and_audited(client: Client) -> None:
    _, created = await post_lead(client, email="a@x.com")
    url = f"/api/leads/{created['lead']['id']}/transitions"
    ok = await client.post(url, json={"to": "contacted", "actor": "rep:ana"}, headers=AUTH)
    assert ok.status == 200
    body = await ok.json()
    assert body["lead"]["stage"] == "contacted"
    assert (body["event"]["from"], body["event"]["to"], body["event"]["actor"]) == (
        "new",
        "contacted",
        "rep:ana",
    )
    no_reason = await client.post(url, json={"to": "lost"}, headers=AUTH)
    assert no_reason.status == 422
    assert_error(await no_reason.json(), "reason_required")
    stale = await client.post(
        url, json={"to": "lost", "reason": "x", "expected_from": "new"}, headers=AUTH
    )
    assert stale.status == 409
    assert_error(await stale.json(), "stale_stage")
    lost = await client.post(url, json={"to": "lost", "reason": "chose a rival"}, headers=AUTH)
    assert (await lost.json())["lead"]["lost_reason"] == "chose a rival"
    detail = await (await client.get(url.rsplit("/", 1)[0], headers=AUTH)).json()
    assert [(h["from"], h["to"], h["reason"]) for h in detail["history"]] == [
        (None, "new", None),
        ("new", "contacted", None),
        ("contacted", "lost", "chose a rival"),
    ]


async def test_listing_filters_by_stage_and_pages(client: Client) -> None:
    # Phone-only leads: an email lead would get its first touch and move to contacted.
    phones = [f"+1415555010{i}" for i in range(5)]
    ids = [(await post_lead(client, phone=phone))[1]["lead"]["id"] for phone in phones]
    await client.post(f"/api/leads/{ids[1]}/transitions", json={"to": "contacted"}, headers=AUTH)
    contacted = await (await client.get("/api/leads?stage=contacted", headers=AUTH)).json()
    assert [lead["id"] for lead in contacted["leads"]] == [ids[1]]
    page1 = await (await client.get("/api/leads?limit=3", headers=AUTH)).json()
    page2 = await (
        await client.get(f"/api/leads?limit=3&after={page1['next_after']}", headers=AUTH)
    ).json()
    assert [lead["id"] for lead in page1["leads"] + page2["leads"]] == ids
    assert page2["next_after"] is None


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("GET", "/api/leads", {}),
        ("GET", "/api/leads", {"Authorization": "Bearer wrong"}),
        ("GET", "/api/leads", {"Authorization": "Basic dGVzdA=="}),
        ("POST", "/api/leads", {}),
        ("GET", "/api/leads/1", {}),
    ],
)
async def test_api_needs_the_bearer_token(
    client: Client, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await client.request(method, path, headers=headers, json={"email": "a@x.com"})
    assert response.status == 401
    assert_error(await response.json(), "unauthorized")
    listing = await (await client.get("/api/leads", headers=AUTH)).json()
    assert listing["leads"] == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[1, 2]", 400, "malformed_json"),
        (b"\xff\xfe", 400, "malformed_json"),
        (b'{"emial": "a@x.com"}', 422, "invalid"),
        (b'{"email": "a@x.com", "name": 5}', 422, "invalid"),
        (b'{"email": "not-an-email"}', 422, "invalid_lead"),
        (b'{"name": "no contact"}', 422, "invalid_lead"),
    ],
)
async def test_bad_intake_bodies(client: Client, body: bytes, status: int, code: str) -> None:
    response = await client.post("/api/leads", data=body, headers=AUTH)
    assert response.status == status
    assert_error(await response.json(), code)
    listing = await (await client.get("/api/leads", headers=AUTH)).json()
    assert listing["leads"] == []


async def test_oversized_body_is_413(client: Client) -> None:
    response = await client.post(
        "/api/leads", data=b'{"name": "' + b"a" * 70_000 + b'"}', headers=AUTH
    )
    assert response.status == 413
    assert_error(await response.json(), "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/api/leads/999", 404, "not_found"),
        ("GET", "/api/leads/abc", 404, "not_found"),
        ("POST", "/api/leads/999/transitions", 404, "not_found"),
        ("GET", "/api/leads?stage=bogus", 400, "bad_query"),
        ("GET", "/api/leads?limit=0", 400, "bad_query"),
        ("DELETE", "/api/leads", 405, "method_not_allowed"),
        ("GET", "/nowhere", 404, "not_found"),
    ],
)
async def test_errors_are_json(
    client: Client, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path, headers=AUTH, json={"to": "contacted"})
    assert response.status == status
    assert_error(await response.json(), code)


@pytest.mark.fresh_store  # drops a table
async def test_unexpected_failure_is_a_bare_500(client: Client, engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("DROP TABLE stage_events"))
    response = await client.post("/api/leads", json={"email": "a@x.com"}, headers=AUTH)
    assert response.status == 500
    body = await response.json()
    assert body == {
        "error": {"code": "internal_error", "message": "internal error; see the server log"}
    }


async def test_metrics_count_requests_and_intake(client: Client) -> None:
    await post_lead(client, email="m@x.com", source="webinar")
    await client.get("/api/leads", headers={})
    await client.get("/api/leads", headers={})
    text_body = await (await client.get("/metrics")).text()
    assert 'leadbot_leads_created_total{source="form"} 1.0' in text_body
    assert (
        'leadbot_http_requests_total{method="GET",route="/api/leads",status="401"} 2.0'
        in text_body
    )
    # one POST and two GETs on the route
    assert 'leadbot_http_request_seconds_count{route="/api/leads"} 3.0' in text_body


async def test_a_form_message_and_answers_are_kept_on_the_lead(client: Client) -> None:
    status, body = await post_lead(
        client,
        email="rene@dubois.example",
        source="webflow",
        message="Nous cherchons un portail client",
        answers={"How many people work at your company?": "about 40", "timeline": "Q3"},
    )
    assert status == 201, body
    lead_id = body["lead"]["id"]
    again, _ = await post_lead(client, email="rene@dubois.example", message="Any news?")
    assert again == 200
    detail = await (await client.get(f"/api/leads/{lead_id}", headers=AUTH)).json()
    assert [(f["message"], f["answers"], f["source"]) for f in detail["forms"]] == [
        (
            "Nous cherchons un portail client",
            {"How many people work at your company?": "about 40", "timeline": "Q3"},
            "webflow",
        ),
        ("Any news?", {}, None),
    ]
    # The older spelling (answers and message inside attribution) is still accepted.
    status, body = await post_lead(
        client, email="old@form.example", attribution={"message": "hi", "timeline": "Q3"}
    )
    assert status == 201 and body["lead"]["attribution"] == {"message": "hi", "timeline": "Q3"}


@pytest.mark.parametrize(
    "bad",
    [
        {"answers": {"": "x"}},
        {"answers": {"q": 3}},
        {"answers": {f"q{i}": "a" for i in range(51)}},
        {"answers": ["not", "a", "map"]},
        {"message": "x" * 5001},
    ],
)
async def test_bad_message_or_answers_are_422(client: Client, bad: dict[str, Any]) -> None:
    status, body = await post_lead(client, email="a@b.example", **bad)
    assert status == 422
    assert_error(body, "invalid")
