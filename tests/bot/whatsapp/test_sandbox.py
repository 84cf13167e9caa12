"""Whole conversations through the sandbox endpoints (the same inbox path as Meta's)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.http.appkeys import SESSIONS
from scheduler.store.models import StageEvent
from tests.bot.support import AUTH
from tests.bot.whatsapp.conftest import Client, MakeClient, Recorder, lead_by_phone

PATH = "/api/sandbox/whatsapp/messages"


async def say(client: Client, phone: str, **message: str) -> dict[str, Any]:
    """Send one prospect message; return the bot's one reply to it."""
    response = await client.post(PATH, json={"from": phone, **message}, headers=AUTH)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert len(body["replies"]) == 1, body
    payload: dict[str, Any] = body["replies"][0]["payload"]
    return payload


async def stages(client: Client, lead_id: int) -> list[str]:
    async with client.app[SESSIONS]() as db:
        rows = await db.scalars(
            StageEvent.__table__.select()
            .with_only_columns(StageEvent.to_stage)
            .where(StageEvent.lead_id == lead_id)
            .order_by(StageEvent.id)
        )
        return list(rows)


async def test_full_qualification_by_buttons(wa: tuple[Client, Recorder]) -> None:
    client, recorder = wa
    phone = "+14155550170"
    first = await say(client, phone, text="hi", name="Dana Levi")
    assert first["kind"] == "list" and any(r["id"] == "need:build" for r in first["rows"])
    second = await say(client, phone, choice="need:build")
    assert second["kind"] == "list" and any(
        r["id"] == "company_size:51-200" for r in second["rows"]
    )
    third = await say(client, phone, choice="company_size:51-200")
    assert third["kind"] == "text" and "budget" in third["text"].lower()
    fourth = await say(client, phone, text="around 60k")
    assert fourth["kind"] == "list" and any(r["id"] == "timeline:asap" for r in fourth["rows"])
    last = await say(client, phone, choice="timeline:asap")
    assert last["kind"] == "cta_url"
    lead = await lead_by_phone(client, phone)
    assert lead is not None
    query = parse_qs(urlsplit(last["url"]).query)
    assert last["url"].startswith("https://calendly.com/acme/intro?")
    assert query["utm_content"] == [lead.token] and query["name"] == ["Dana Levi"]
    assert lead.stage == "qualified"
    assert await stages(client, lead.id) == ["new", "contacted", "qualified"]
    assert lead.qualification is not None
    assert lead.qualification["decision"] == "qualified"
    assert lead.qualification["script_id"] == "b2b_default"
    assert lead.qualification["script_version"] == "2026-12"
    assert lead.qualification["slots"]["budget"]["value"] == 60000
    assert [kind for _, kind, _ in recorder.notified] == ["qualified"]
    listed = await client.get(PATH, params={"phone": phone}, headers=AUTH)
    assert len((await listed.json())["messages"]) == 5


async def test_full_qualification_by_free_text(wa: tuple[Client, Recorder]) -> None:
    client, recorder = wa
    phone = "+14155550171"
    await say(client, phone, text="Hi! we need a new website for our shop")
    await say(client, phone, text="we're about 120 people")
    await say(client, phone, text="budget is 30k")
    last = await say(client, phone, text="asap please")
    assert last["kind"] == "cta_url" and "utm_content=" in last["url"]
    lead = await lead_by_phone(client, phone)
    assert lead is not None and lead.stage == "qualified"
    assert (
        lead.qualification is not None
        and lead.qualification["slots"]["company_size"]["value"] == "51-200"
    )
    assert [kind for _, kind, _ in recorder.notified] == ["qualified"]


async def test_disqualification_deflects_politely(make_client: MakeClient) -> None:
    guide = "https://www.northwind.example/guides/start"
    client, recorder = await make_client(resource_url=guide)  # LEADBOT_RESOURCE_URL
    phone = "+14155550172"
    await say(client, phone, text="hi, need some marketing help")
    await say(client, phone, text="just me")
    await say(client, phone, text="maybe 500 dollars")
    last = await say(client, phone, text="no rush")
    assert last["kind"] == "text" and last["text"].endswith(f"this guide should help: {guide}")
    lead = await lead_by_phone(client, phone)
    assert lead is not None and lead.stage == "lost"
    assert lead.lost_reason is not None and lead.lost_reason.startswith("disqualified:")
    assert recorder.notified == []


async def test_sandbox_needs_the_api_token_and_valid_input(wa: tuple[Client, Recorder]) -> None:
    client, _ = wa
    response = await client.post(PATH, json={"from": "+14155550173", "text": "hi"})
    assert response.status == 401
    for bad in (
        {"from": "+14155550173"},
        {"from": "nope", "text": "hi"},
        {"from": "+14155550173", "text": "hi", "choice": "x"},
    ):
        response = await client.post(PATH, json=bad, headers=AUTH)
        assert response.status == 400, bad
        assert (await response.json())["error"]["code"] == "invalid"
    assert (await client.get(PATH, headers=AUTH)).status == 400


async def test_sandbox_is_off_when_real_whatsapp_is_configured(make_client: MakeClient) -> None:
    client, _ = await make_client(whatsapp_token="real-token", whatsapp_phone_id="123")
    response = await client.post(PATH, json={"from": "+14155550174", "text": "hi"}, headers=AUTH)
    assert response.status == 409
    assert await lead_by_phone(client, "+14155550174") is None
