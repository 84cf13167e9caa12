"""``/metrics`` is public: its labels come from closed sets only (issue 12, item 21)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.bot.support import AUTH

Client = TestClient[Any, Any]
SOURCES = {"whatsapp", "email", "form", "ad", "import", "api", "other"}


@pytest.mark.parametrize(
    ("source", "label"),
    [
        (None, "api"),
        ("", "api"),
        ("WhatsApp click-to-chat", "whatsapp"),
        ("Facebook Ads / spring", "ad"),
        ("newsletter", "email"),
        ("website contact form", "form"),
        ("csv import", "import"),
        ("zapier", "api"),
        ("jane.doe@example.com", "other"),
        ("random-campaign-xyz-123", "ad"),
        ("xyz 4711", "other"),
    ],
)
def test_sources_map_onto_the_closed_set(source: str | None, label: str) -> None:
    from bot.http.metrics import SOURCE_LABELS, source_label

    assert source_label(source) == label
    assert label in SOURCE_LABELS


async def test_free_text_never_becomes_a_label(client: Client) -> None:
    sources = ["jane.doe@example.com", "Dana Levi +972 54 123 4567", *(f"s{i}" for i in range(20))]
    for i, source in enumerate(sources):
        response = await client.post(
            "/api/leads", json={"email": f"p{i}@example.org", "source": source}, headers=AUTH
        )
        assert response.status == 201
    await client.request("BREW", "/api/leads")  # any token is a method to aiohttp
    await client.request("PROPFIND", "/no/such/path")
    exposition = await (await client.get("/metrics")).text()
    created = re.findall(r'leadbot_leads_created_total\{source="([^"]*)"\} (\S+)', exposition)
    assert dict(created) == {"other": str(float(len(sources)))}
    values: dict[str, set[str]] = {}
    for labels in re.findall(r"^leadbot_\w+\{([^}]*)\}", exposition, re.MULTILINE):
        for name, value in re.findall(r'(\w+)="([^"]*)"', labels):
            values.setdefault(name, set()).add(value)
    every = " ".join(v for vs in values.values() for v in vs)
    for secret in ("jane.doe", "example.com", "Dana", "972", "s19", "BREW", "PROPFIND"):
        assert secret not in every
    assert values["source"] <= SOURCES
    assert values["method"] <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "other",
    }
    assert all(r.startswith("/") or r == "unmatched" for r in values["route"])
