"""Rep notifications: owner assignment, one outbox row per way to reach the owner, keys that
never store the same notification twice; and the ``leadbot reps`` commands."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from bot.channels.whatsapp_limits import parse_payload
from bot.cli.main import app
from bot.notify import RepOptions, notify_reps
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store.models import Lead, OutboxItem
from scheduler.store.reps import add_rep

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
Sessions = async_sessionmaker[AsyncSession]
OPTIONS = RepOptions(template="rep_alert", language="en_US", public_url="https://bot.example")
DETAILS: dict[str, Any] = {
    "channel": "whatsapp",
    "slots": {
        "company_size": {"value": "51-200", "evidence": "about 120 people", "unknown": False},
        "timeline": {"value": None, "evidence": "idk", "unknown": True},
    },
    "qualification": {
        "decision": "qualified",
        "tier": "hot",
        "fit_score": 82,
        "intent_score": 70,
        "reasons": ["size in range", "needs it soon"],
    },
}


async def make_lead(sessions: Sessions, *, reps: bool = True) -> Lead:
    async with sessions.begin() as session:
        data = LeadIn(name="Dana", phone="+14155550123", company="Acme")
        lead = (await intake(session, data, default_region="US", now=NOW)).lead
        if reps:
            await add_rep(
                session, name="Ana", email="ana@seller.com", whatsapp="+14155550777", now=NOW
            )
    return lead


async def notify(sessions: Sessions, lead: Lead, **kwargs: Any) -> list[int]:
    values: dict[str, Any] = {
        "kind": "qualified",
        "summary": "Qualified:\nhot lead",
        "details": DETAILS,
        "options": OPTIONS,
    } | kwargs
    async with sessions.begin() as session:
        lead = await session.merge(lead)
        return await notify_reps(session, lead=lead, now=NOW, **values)


async def outbox(sessions: Sessions) -> list[OutboxItem]:
    async with sessions() as session:
        return list((await session.scalars(select(OutboxItem).order_by(OutboxItem.id))).all())


async def test_the_owner_gets_a_whatsapp_template_and_an_email(sessions: Sessions) -> None:
    lead = await make_lead(sessions)

    ids = await notify(sessions, lead)

    whatsapp, email = await outbox(sessions)
    assert ids == [whatsapp.id, email.id]
    rep_id = 1
    assert whatsapp.key.startswith(f"rep:{rep_id}:lead:{lead.id}:qualified:")
    assert whatsapp.lead_id is None  # not part of the lead's own conversation
    assert (whatsapp.channel, whatsapp.recipient) == ("whatsapp", "+14155550777")
    assert whatsapp.payload["template"] == "rep_alert"
    assert whatsapp.payload["params"] == ["Qualified lead", "Dana (Acme)", "Qualified: hot lead"]
    parse_payload(whatsapp.payload)  # within WhatsApp's template limits
    assert (email.channel, email.recipient) == ("email", "ana@seller.com")
    assert email.payload["subject"] == "[leadbot] Qualified lead: Dana (Acme)"
    text = email.payload["text"]
    assert "- company_size: 51-200 (“about 120 people”)" in text
    assert "- timeline: doesn't know" in text
    assert "Decision: qualified (tier hot, fit 82, intent 70)" in text
    assert "https://bot.example/api/leads/" in text
    assert "<p>Phone: +14155550123</p>" in email.payload["html"]
    async with sessions() as session:
        assert (await session.get(Lead, lead.id)).owner_rep_id == rep_id  # type: ignore[union-attr]


async def test_the_same_notification_is_stored_once(sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    await notify(sessions, lead)

    assert await notify(sessions, lead) == []
    assert len(await notify(sessions, lead, kind="handoff", summary="Wants a person")) == 2
    assert len(await outbox(sessions)) == 4


async def test_without_a_rep_template_reps_get_email_only(sessions: Sessions) -> None:
    lead = await make_lead(sessions)

    await notify(sessions, lead, options=RepOptions())

    assert [item.channel for item in await outbox(sessions)] == ["email"]


async def test_without_reps_nothing_is_stored(sessions: Sessions) -> None:
    lead = await make_lead(sessions, reps=False)

    assert await notify(sessions, lead) == []


async def test_an_unknown_kind_is_an_error(sessions: Sessions) -> None:
    lead = await make_lead(sessions)
    with pytest.raises(ValueError, match="unknown notification kind"):
        await notify(sessions, lead, kind="gossip")


def test_the_reps_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LEADBOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    env = {"LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    runner = CliRunner()

    added = runner.invoke(
        app,
        ["reps", "add", "Ana Lopez", "--email", "Ana@Seller.com", "--whatsapp", "(415) 555-0777"],
        env=env,
    )
    assert added.exit_code == 0, added.output
    assert "rep 1 added" in added.output
    again = runner.invoke(app, ["reps", "add", "Ana", "--email", "ana@seller.com"], env=env)
    assert again.exit_code == 1 and "exists already" in again.output
    nothing = runner.invoke(app, ["reps", "add", "Bob"], env=env)
    assert nothing.exit_code == 2
    assert runner.invoke(app, ["reps", "deactivate", "1"], env=env).exit_code == 0
    assert runner.invoke(app, ["reps", "deactivate", "7"], env=env).exit_code == 1
    listed = runner.invoke(app, ["reps", "list"], env=env)
    assert "ana@seller.com" in listed.output and "+14155550777" in listed.output
    assert " no " in listed.output
