"""schemathesis against a LIVE ``leadbot serve``: every operation of ``bot/http/openapi.json``
gets requests generated from the document itself, and every answer must be no 5xx, with a
status, content type, headers and body the document describes.

The server is the bad-input probe's (``tests/bot/test_bad_input_probe.py``): a real process on
127.0.0.1 over an SQLite file, with one seed lead so generated ids sometimes hit a real row.
Examples are bounded and derandomized so the run is short and the same every time.

Left out: ``POST /api/sandbox/whatsapp/messages``, which runs the dialog engine and may wait up to
30 s for the bot's replies per request; its ``GET`` is fuzzed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from bot.http.openapi import SPEC_FILE
from tests.bot.test_bad_input_probe import AUTH, Server, _start

schema = schemathesis.openapi.from_path(SPEC_FILE).exclude(
    path="/api/sandbox/whatsapp/messages", method="POST"
)
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory: Path = tmp_path_factory.mktemp("openapi-fuzz")
    server = _start("embedded", directory)
    try:
        yield server
        log = (directory / "serve.log").read_text(errors="replace")
        assert "Traceback" not in log, log[-5000:]
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)


@schema.parametrize()
@settings(
    max_examples=15, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)
def test_the_api_answers_as_its_document_says(case: schemathesis.Case[Any], live: Server) -> None:
    case.call_and_validate(
        base_url=f"http://127.0.0.1:{live.port}", headers=AUTH, checks=CHECKS, timeout=30
    )
