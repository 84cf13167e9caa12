"""Erasure end to end: a WhatsApp prospect who opted out asks to be forgotten; nothing of
theirs is left in any table, the stage history stays, and writing again gets no message."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, text, update

from bot.http.appkeys import ENGINE, SESSIONS
from scheduler.store.models import (
    Base,
    Booking,
    Lead,
    OutboxItem,
    ProcessedEvent,
    Rep,
    StageEvent,
    Touch,
)
from scheduler.store.suppressions import SuppressionReason, suppress
from tests.bot.support import AUTH
from tests.bot.whatsapp.conftest import (
    Client,
    Recorder,
    lead_by_phone,
    post,
    replies,
    settle,
    text_body,
)

WA_ID = "14155550199"
PHONE = f"+{WA_ID}"
NAME = "Zebulon Quartermaine"
EMAIL = "zebulon.q@quartermaine-widgets.example"
COMPANY = "Quartermaine Widgets"
# What must not be found anywhere after erasure (the phone with and without its +).
PERSONAL = ("Zebulon", "Quartermaine", "zebulon", "quartermaine", WA_ID[1:])
NOW = datetime(2026, 12, 6, 5, 0, tzinfo=UTC)


async def _personal_data_everywhere(client: Client, lead_id: int) -> None:
    """Give the lead personal data in every table that can hold some."""
    async with client.app[SESSIONS].begin() as db:
        await db.execute(
            update(Lead)
            .where(Lead.id == lead_id)
            .values(
                email=EMAIL,
                company=COMPANY,
                role="Head of Zebulon Ops",
                timezone="US/Central",
                attribution={"utm_source": "zebulon-newsletter"},
                enrichment={"domain": "quartermaine-widgets.example"},
                qualification={
                    "slots": {
                        "need": {
                            "value": "Zebulon wants widgets",
                            "evidence": "I'm Zebulon Quartermaine",
                        }
                    }
                },
                email_status=f"bounced: 550 <{EMAIL}>",
            )
        )
        rep_id = await db.scalar(
            insert(Rep).values(name="Rita Rep", email="rita@seller.example").returning(Rep.id)
        )
        await db.execute(
            insert(Touch).values(
                lead_id=lead_id,
                sequence="quiet",
                step="nudge",
                cycle=0,
                channel="email",
                due_at=NOW,
                status="awaiting_approval",
                needs_approval=True,
                draft=f"Hi {NAME}, still keen on widgets?",
                note=f"draft for {EMAIL}",
                meta={"subject": f"Widgets for {COMPANY}"},
                created_at=NOW,
            )
        )
        await db.execute(
            insert(OutboxItem).values(
                key=f"rep:{rep_id}:lead:{lead_id}:qualified:x:email",
                channel="email",
                recipient="rita@seller.example",
                payload={"text": f"{NAME} ({EMAIL}) qualified"},
                state="pending",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await db.execute(
            insert(OutboxItem).values(
                key=f"lead:{lead_id}:touch:quiet:email",
                channel="email",
                lead_id=lead_id,
                recipient=EMAIL,
                payload={"subject": f"Hi {NAME}"},
                state="failed",
                error=f"{EMAIL} refused",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await db.execute(
            insert(Booking).values(
                lead_id=lead_id,
                invitee_uri="https://api.calendly.com/invitees/INV-ZQ",
                status="active",
                start_time=NOW,
                timezone="America/Chicago",
                payload={"invitee": {"name": NAME, "email": EMAIL}},
                created_at=NOW,
            )
        )
        await db.execute(
            insert(ProcessedEvent).values(source="calendly", key="evt-zq", created_at=NOW)
        )
        await db.execute(
            insert(StageEvent).values(
                lead_id=lead_id,
                from_stage="contacted",
                to_stage="contacted",
                reason=f"note: {NAME} asked for a call",
                actor="rep:rita",
                at=NOW,
            )
        )
        await suppress(
            db, EMAIL, reason=SuppressionReason.HARD_BOUNCE, detail=f"550 <{EMAIL}>", now=NOW
        )


async def _rows_with_personal_data(client: Client) -> list[tuple[str, str, str]]:
    """Every (table, column, value) in the database holding any of PERSONAL."""
    found: list[tuple[str, str, str]] = []
    async with client.app[ENGINE].connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in (await connection.execute(select(table))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    as_text = str(value)
                    if any(p.lower() in as_text.lower() for p in PERSONAL):
                        found.append((table.name, column, as_text[:120]))
        # The scan reads the tables SQLAlchemy knows; make sure that is every table there is.
        dialect = connection.dialect.name
        listing = (
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            if dialect == "sqlite"
            else "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()"
        )
        names = set((await connection.execute(text(listing))).scalars())
    assert names - {"alembic_version", "sqlite_sequence"} == set(Base.metadata.tables)
    return found


async def test_an_erased_person_leaves_no_trace_and_stays_unmessaged(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    for i, words in enumerate(["hi, I'm Zebulon Quartermaine", "STOP"]):
        assert (
            await post(client, text_body(WA_ID, f"wamid.ZQ{i}", words, name=NAME))
        ).status == 200
        await settle(client)
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None and lead.opted_out_at is not None
    await _personal_data_everywhere(client, lead.id)
    assert len(await _rows_with_personal_data(client)) > 10  # the scan does see them
    before = await (await client.get(f"/api/leads/{lead.id}", headers=AUTH)).json()

    response = await client.delete(f"/api/leads/{lead.id}", headers=AUTH)

    assert response.status == 200
    body = await response.json()
    assert body["erased"] is True and body["already_erased"] is False
    assert body["lead"]["erased_at"] is not None
    assert await _rows_with_personal_data(client) == []
    # The anonymous stage history stays, with one audit row more.
    detail = await (await client.get(f"/api/leads/{lead.id}", headers=AUTH)).json()
    assert detail["lead"]["erased_at"] is not None
    assert detail["lead"]["stage"] == before["lead"]["stage"]
    history = [(h["from"], h["to"], h["actor"]) for h in detail["history"]]
    assert history[:-1] == [(h["from"], h["to"], h["actor"]) for h in before["history"]]
    assert (detail["history"][-1]["reason"], detail["history"][-1]["actor"]) == ("erased", "api")
    # Pending work for the person is cancelled.
    async with client.app[SESSIONS]() as db:
        touch = await db.scalar(select(Touch).where(Touch.lead_id == lead.id))
        outbox = list(await db.scalars(select(OutboxItem).order_by(OutboxItem.id)))
    assert touch is not None and (touch.status, touch.draft) == ("cancelled", None)
    assert {o.state for o in outbox if o.key.startswith("rep:")} == {"failed"}

    again = await client.delete(f"/api/leads/{lead.id}", headers=AUTH)
    assert again.status == 200 and (await again.json())["already_erased"] is True
    after = await (await client.get(f"/api/leads/{lead.id}", headers=AUTH)).json()
    assert len(after["history"]) == len(detail["history"])  # no second audit row
    missing = await client.delete("/api/leads/987654321", headers=AUTH)
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"
    assert (await client.delete(f"/api/leads/{lead.id}")).status == 401
    bad_actor = await client.delete(f"/api/leads/{lead.id}?actor=", headers=AUTH)
    assert bad_actor.status == 400

    # They opted out before: writing again from the same phone gets nothing back.
    body_again = text_body(WA_ID, "wamid.ZQ-back", "hello again", name=NAME)
    assert (await post(client, body_again)).status == 200
    await settle(client)
    assert await replies(client, PHONE) == []


async def test_an_erased_person_who_had_not_opted_out_is_answered_as_someone_new(
    wa: tuple[Client, Recorder],
) -> None:
    client, _ = wa
    assert (await post(client, text_body(WA_ID, "wamid.N0", "hi", name=NAME))).status == 200
    await settle(client)
    lead = await lead_by_phone(client, PHONE)
    assert lead is not None
    erased = await client.delete(f"/api/leads/{lead.id}?actor=dpo%40seller.example", headers=AUTH)
    assert erased.status == 200
    assert (await erased.json())["history"][-1]["actor"] == "dpo@seller.example"
    assert await _rows_with_personal_data(client) == []

    assert (await post(client, text_body(WA_ID, "wamid.N1", "hi again"))).status == 200
    await settle(client)
    sent: list[dict[str, Any]] = await replies(client, PHONE)
    assert len(sent) == 1  # a new conversation, not a suppressed one
    newcomer = await lead_by_phone(client, PHONE)
    assert newcomer is not None and newcomer.id != lead.id
