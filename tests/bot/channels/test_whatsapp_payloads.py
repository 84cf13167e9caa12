"""The WhatsApp channel against the fake Cloud API: the exact JSON of every payload kind,
and WhatsApp's limits refused before any request is made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.channels.whatsapp import WhatsAppChannel
from scheduler.delivery.outbox import NotSent
from tests.support.fakes.graph_api import FakeGraphAPI

TO = "+14155550123"
COMMON = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": "14155550123"}


@pytest.fixture
async def channel(graph_api: FakeGraphAPI) -> AsyncIterator[WhatsAppChannel]:
    channel = WhatsAppChannel(
        phone_id=graph_api.phone_id, token=graph_api.token, api_url=graph_api.base_url
    )
    yield channel
    await channel.aclose()


SENDS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"kind": "text", "text": "Hi Dana! What are you building?"},
        {
            "type": "text",
            "text": {"body": "Hi Dana! What are you building?", "preview_url": False},
        },
    ),
    (
        {"text": "a payload without a kind is text"},
        {
            "type": "text",
            "text": {"body": "a payload without a kind is text", "preview_url": False},
        },
    ),
    (
        {
            "kind": "buttons",
            "text": "How big is your team?",
            "buttons": [{"id": "size:1-10", "title": "1-10"}, {"id": "size:11+", "title": "11+"}],
            "reply_to": "wamid.IN1",
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "size:1-10", "title": "1-10"}},
                        {"type": "reply", "reply": {"id": "size:11+", "title": "11+"}},
                    ]
                },
                "body": {"text": "How big is your team?"},
            },
        },
    ),
    (
        {
            "kind": "list",
            "text": "When do you need it?",
            "button": "Choose",
            "rows": [
                {"id": "timeline:1m", "title": "Within a month", "description": "ASAP"},
                {"id": "timeline:later", "title": "Later"},
            ],
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "list",
                "action": {
                    "button": "Choose",
                    "sections": [
                        {
                            "title": "Choose",
                            "rows": [
                                {
                                    "id": "timeline:1m",
                                    "title": "Within a month",
                                    "description": "ASAP",
                                },
                                {"id": "timeline:later", "title": "Later"},
                            ],
                        }
                    ],
                },
                "body": {"text": "When do you need it?"},
            },
        },
    ),
    (
        {
            "kind": "cta_url",
            "text": "Pick a time that suits you",
            "title": "Book a call",
            "url": "https://calendly.com/acme/30min?utm_content=tok123",
        },
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "action": {
                    "name": "cta_url",
                    "parameters": {
                        "display_text": "Book a call",
                        "url": "https://calendly.com/acme/30min?utm_content=tok123",
                    },
                },
                "body": {"text": "Pick a time that suits you"},
            },
        },
    ),
    (
        {
            "kind": "template",
            "text": "New lead Dana: qualified",
            "template": "rep_alert",
            "language": "en_US",
            "params": ["qualified", "Dana (Acme)", "50 people, needs it in March"],
        },
        {
            "type": "template",
            "template": {
                "name": "rep_alert",
                "language": {"code": "en_US"},
                "components": [
                    {
                        "type": "BODY",
                        "parameters": [
                            {"type": "text", "text": "qualified"},
                            {"type": "text", "text": "Dana (Acme)"},
                            {"type": "text", "text": "50 people, needs it in March"},
                        ],
                    }
                ],
            },
        },
    ),
    (
        {
            "kind": "template",
            "text": "Still there?",
            "template": "lead_followup",
            "language": "he",
        },
        {"type": "template", "template": {"name": "lead_followup", "language": {"code": "he"}}},
    ),
]


@pytest.mark.parametrize(("payload", "expected"), SENDS, ids=lambda v: str(v)[:30])
async def test_every_kind_is_sent_as_the_cloud_api_json(
    channel: WhatsAppChannel,
    graph_api: FakeGraphAPI,
    payload: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    receipt = await channel.send(TO, payload)

    [request] = graph_api.requests
    assert request.path == f"/v26.0/{graph_api.phone_id}/messages"
    assert request.headers["Authorization"] == f"Bearer {graph_api.token}"
    assert request.body == {**COMMON, **expected}
    assert receipt.external_id == request.wamid


def _rows(n: int) -> list[dict[str, str]]:
    return [{"id": f"r{i}", "title": f"Row {i}"} for i in range(n)]


BUTTONS = [{"id": "a", "title": "A"}]
OVER_LIMITS: dict[str, dict[str, Any]] = {
    "4 buttons": {
        "kind": "buttons",
        "text": "t",
        "buttons": [{"id": str(i), "title": str(i)} for i in range(4)],
    },
    "no buttons": {"kind": "buttons", "text": "t", "buttons": []},
    "button title 21": {
        "kind": "buttons",
        "text": "t",
        "buttons": [{"id": "a", "title": "x" * 21}],
    },
    "duplicate button ids": {
        "kind": "buttons",
        "text": "t",
        "buttons": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}],
    },
    "interactive body 1025": {"kind": "buttons", "text": "x" * 1025, "buttons": BUTTONS},
    "11 rows": {"kind": "list", "text": "t", "button": "Pick", "rows": _rows(11)},
    "row title 25": {
        "kind": "list",
        "text": "t",
        "button": "Pick",
        "rows": [{"id": "a", "title": "x" * 25}],
    },
    "row description 73": {
        "kind": "list",
        "text": "t",
        "button": "Pick",
        "rows": [{"id": "a", "title": "A", "description": "x" * 73}],
    },
    "list button 21": {"kind": "list", "text": "t", "button": "x" * 21, "rows": _rows(2)},
    "text 4097": {"kind": "text", "text": "x" * 4097},
    "empty text": {"kind": "text", "text": "  "},
    "cta title 21": {"kind": "cta_url", "text": "t", "title": "x" * 21, "url": "https://a.b"},
    "cta not http": {"kind": "cta_url", "text": "t", "title": "Go", "url": "javascript:alert(1)"},
    "template param new line": {
        "kind": "template",
        "text": "t",
        "template": "rep_alert",
        "language": "en_US",
        "params": ["two\nlines"],
    },
    "template bad name": {
        "kind": "template",
        "text": "t",
        "template": "Rep Alert",
        "language": "en_US",
    },
    "unknown kind": {"kind": "image", "text": "t"},
}


@pytest.mark.parametrize("payload", OVER_LIMITS.values(), ids=OVER_LIMITS.keys())
async def test_a_payload_over_the_limits_is_refused_before_any_request(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI, payload: dict[str, Any]
) -> None:
    with pytest.raises(NotSent) as caught:
        await channel.send(TO, payload)

    assert caught.value.is_transient is False
    assert caught.value.code == "invalid_payload"
    assert graph_api.requests == []


async def test_the_limits_themselves_are_allowed(
    channel: WhatsAppChannel, graph_api: FakeGraphAPI
) -> None:
    rows = [
        {"id": f"r{i}", "title": "x" * 23 + str(i), "description": "d" * 72} for i in range(10)
    ]
    buttons = [{"id": str(i), "title": "x" * 19 + str(i)} for i in range(3)]
    await channel.send(TO, {"kind": "list", "text": "x" * 1024, "button": "x" * 20, "rows": rows})
    await channel.send(TO, {"kind": "buttons", "text": "t", "buttons": buttons})
    await channel.send(TO, {"kind": "text", "text": "x" * 4096})

    assert len(graph_api.messages) == 3
