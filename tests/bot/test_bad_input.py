"""Bad input at the HTTP edges: 4xx with the JSON error, never a 500, nothing stored.

Each case here was a 500 (or resolved to the wrong lead) before: ids that ``int()`` reads
but no column holds, JSON no store can hold, NUL characters PostgreSQL refuses.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.email.unsubscribe import UNSUBSCRIBE_PURPOSE
from bot.http.inputs import RequestInputError, clean, loads, parse_id
from bot.http.signing import sign
from scheduler.store.models import Lead, Suppression
from tests.bot.support import AUTH

Client = TestClient[Any, Any]
Sessions = async_sessionmaker[AsyncSession]
SECRET = "s" * 32  # make_settings' secret key


def assert_json_error(status: int, body: Any, expected: int | tuple[int, ...]) -> None:
    assert status in ((expected,) if isinstance(expected, int) else expected), body
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]


async def _lead(client: Client, **body: Any) -> dict[str, Any]:
    response = await client.post("/api/leads", json=body, headers=AUTH)
    assert response.status in (200, 201), await response.text()
    lead: dict[str, Any] = (await response.json())["lead"]
    return lead


async def _count(sessions: Sessions, model: type[Any]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


BAD_ID_PATHS = [
    "/api/leads/99999999999999999999",
    "/api/leads/9223372036854775808",
    "/api/leads/1_0",  # int() reads 10
    "/api/leads/+1",
    "/api/leads/%D9%A1",  # Arabic-Indic one
    "/api/leads/%201",
    "/api/leads/-1",
    "/api/touches/99999999999999999999/approve",
    "/api/touches/1_0/reject",
]


async def test_ids_that_are_not_plain_ascii_64_bit_numbers_are_404(client: Client) -> None:
    # Leads 1 and 10 exist, so a lenient parser would find one.
    for n in range(10):
        await _lead(client, email=f"p{n}@acme.com")
    for path in BAD_ID_PATHS:
        method = "POST" if "/touches/" in path else "GET"
        body = {"reason": "x"} if path.endswith("reject") else None
        response = await client.request(method, path, headers=AUTH, json=body)
        assert_json_error(response.status, await response.json(), 404)


BAD_QUERIES = [
    "after=1000000000000000000000000000000",
    "after=9223372036854775808",
    "limit=1_0",
    "after=+1",
    "after=%D9%A1",
    "limit=99999999999999999999",
]


async def test_query_numbers_beyond_64_bits_or_not_ascii_are_400(client: Client) -> None:
    for query in BAD_QUERIES:
        for endpoint in ("/api/leads", "/api/touches"):
            response = await client.get(f"{endpoint}?{query}", headers=AUTH)
            assert_json_error(response.status, await response.json(), 400)
        value = query.split("=")[1]
        response = await client.get(f"/api/touches?lead_id={value}", headers=AUTH)
        assert_json_error(response.status, await response.json(), 400)


BAD_JSON = [
    b'{"name": ' + b"9" * 5000 + b', "email": "a@acme.com"}',
    b'{"email": "a@acme.com", "x": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
    b"[" * 20_000 + b"]" * 20_000,
    b'{"email": "a@acme.com", "n": 1e400}',
    b'{"email": "a@acme.com", "n": NaN}',
    b'{"email": "a@acme.com", "to": "won", "n": -Infinity}',
]


async def test_json_no_store_can_hold_is_400_on_every_json_endpoint(
    client: Client, sessions: Sessions
) -> None:
    lead = await _lead(client, email="keep@acme.com")
    paths = [
        "/api/leads",
        f"/api/leads/{lead['id']}/transitions",
        "/api/touches/1/approve",
        "/api/touches/1/reject",
        "/api/sandbox/whatsapp/messages",
    ]
    for raw in BAD_JSON:
        for path in paths:
            response = await client.post(path, data=raw, headers=AUTH)
            assert_json_error(response.status, await response.json(), 400)
        headers = {**AUTH, "Content-Type": "application/json"}
        response = await client.post("/webhooks/email", data=raw, headers=headers)
        assert_json_error(response.status, await response.json(), 400)
    assert await _count(sessions, Lead) == 1


async def test_big_integers_in_fields_are_422_not_500(client: Client, sessions: Sessions) -> None:
    for body in (
        b'{"email": "a@acme.com", "attribution": {"x": 99999999999999999999}}',
        b'{"phone": 99999999999999999999999}',
        b'{"email": "a@acme.com", "name": 18446744073709551616}',
    ):
        response = await client.post("/api/leads", data=body, headers=AUTH)
        assert_json_error(response.status, await response.json(), 422)
    assert await _count(sessions, Lead) == 0


async def test_nul_characters_are_removed_on_intake(client: Client) -> None:
    lead = await _lead(
        client,
        name="Da\x00na",
        email="da\x00na@acme.com",
        company="A\x00",
        attribution={"utm\x00": "x\x00y"},
        source="fo\x00rm",
    )
    assert (lead["name"], lead["email"], lead["company"]) == ("Dana", "dana@acme.com", "A")
    assert lead["attribution"] == {"utm": "xy"} and lead["source"] == "form"


async def test_lone_surrogates_become_replacement_characters(client: Client) -> None:
    response = await client.post(
        "/api/leads", data=b'{"name": "Ana \\ud83d", "email": "ana@acme.com"}', headers=AUTH
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["lead"]["name"] == "Ana \ufffd"


async def test_a_signed_token_carrying_a_huge_id_is_a_400_page(
    client: Client, sessions: Sessions
) -> None:
    for purpose, data, path in (
        (UNSUBSCRIBE_PURPOSE, {"lead": 10**30, "email": "x@acme.com"}, "/unsubscribe/"),
        (UNSUBSCRIBE_PURPOSE, {"lead": 2**63, "email": "x@acme.com"}, "/unsubscribe/"),
        ("approve_touch", {"touch": 10**30}, "/approve/"),
        ("approve_touch", {"touch": True}, "/approve/"),
    ):
        token = sign(purpose, data, secret=SECRET)
        for method in ("GET", "POST"):
            response = await client.request(method, path + token)
            assert response.status == 400, (path, data, await response.text())
    assert await _count(sessions, Suppression) == 0


def test_parse_id_takes_only_ascii_digits_within_64_bits() -> None:
    assert parse_id("42") == 42 and parse_id("007") == 7 and parse_id(str(2**63 - 1))
    for text in ("1_0", "+1", "\u0661", " 1", "1 ", "-1", "0", str(2**63), "", "1e3", "²"):
        assert parse_id(text) is None, text


def test_loads_keeps_what_it_parses_storable() -> None:
    assert loads(b'{"a": 18446744073709551616}') == {"a": 1.8446744073709552e19}
    assert loads('{"a\\u0000": "b\\u0000", "c": ["\\udc00"]}') == {"a": "b", "c": ["\ufffd"]}
    assert loads(b'{"a": "\\ud83d\\ude00", "n": 99999999999999999999}') == {
        "a": "\U0001f600",
        "n": 1e20,
    }
    for raw in (
        b"\xff",
        b'{"a": "\\ud800", "n": ' + b"9" * 400 + b"}",
        b'["\\ud800", NaN]',
        b'["\\ud800"' + b", [" * 3000 + b"]" * 3000 + b"]",
    ):
        with pytest.raises(RequestInputError):
            loads(raw)
    assert clean({"k": [1, None, "x\x00"]}) == {"k": [1, None, "x"]}
    # Whatever either parser returns, a JSON column can store it again.
    numbers = b"-9999999999999999999, 18446744073709551615, 1844674407370955161600"
    for raw in (b"[" + numbers + b"]", b'["\\ud800", ' + numbers + b"]"):
        parsed = loads(raw)
        assert orjson.loads(orjson.dumps(parsed)) == parsed


async def test_html_pages_carry_security_headers_and_no_server_version(
    client: Client,
) -> None:
    lead = await _lead(client, email="jane@acme.com")
    token = sign(
        UNSUBSCRIBE_PURPOSE, {"lead": lead["id"], "email": "jane@acme.com"}, secret=SECRET
    )
    pages = [
        ("GET", f"/unsubscribe/{token}", 200),
        ("GET", "/unsubscribe/bad", 400),
        ("GET", "/approve/bad", 400),
        ("POST", "/approve/bad", 400),
    ]
    for method, path, status in pages:
        response = await client.request(method, path)
        assert response.status == status and response.content_type == "text/html"
        csp = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert "script-src" not in csp  # no script may run at all
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    for method, path in (
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/nope"),
        ("GET", "/api/leads"),
        ("DELETE", "/healthz"),
        ("GET", f"/unsubscribe/{token}"),
    ):
        response = await client.request(method, path)
        server = response.headers.get("Server", "")
        assert (
            "aiohttp" not in server
            and "Python" not in server
            and not any(c.isdigit() for c in server)
        ), (path, server)
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_requests_the_http_parser_refuses_carry_no_server_version(client: Client) -> None:
    import asyncio

    assert client.server.port is not None
    for raw in (
        b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"BLAH\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20_000 + b"\r\n\r\n",
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        writer.write(raw)
        await writer.drain()
        head = (await reader.read(4096)).decode("latin-1")
        writer.close()
        assert head.startswith(("HTTP/1.1 4", "HTTP/1.0 4")), head[:200]
        assert "aiohttp" not in head and "Python/" not in head, head[:500]
