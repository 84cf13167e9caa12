"""No secret and no personal data in the logs (issue 12, item 22): the access log of
``leadbot serve``, SQL errors, and configuration errors."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.redact import install
from bot.settings import SettingsError, load_settings
from scheduler.store.models import Suppression, utcnow

SECRETS = ("TOKENaaaa1111", "TOKENbbbb2222", "TOKENcccc3333", "VERIFYdddd4444", "15557654321")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, *, method: str = "GET", headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_access_log_of_serve_redacts_link_tokens_and_sensitive_query_values(
    tmp_path: Path,
) -> None:
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEADBOT_")}
    environment |= {
        "LEADBOT_PORT": str(port),
        "LEADBOT_WHATSAPP_VERIFY_TOKEN": "VERIFYdddd4444",
        "LEADBOT_EMAIL_WEBHOOK_TOKEN": "hook-token",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while _health(base) != 200:
            assert process.poll() is None, "leadbot serve exited"
            assert time.monotonic() < deadline, "leadbot serve did not start in 30 s"
            time.sleep(0.1)  # polling for readiness, not covering a race
        _get(f"{base}/approve/TOKENaaaa1111")
        _get(f"{base}/unsubscribe/TOKENbbbb2222?x=1", method="POST")
        _get(
            f"{base}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=VERIFYdddd4444"
            "&hub.challenge=42"
        )
        _get(
            f"{base}/api/sandbox/whatsapp/messages?phone=%2B15557654321",
            headers={"Referer": f"{base}/approve/TOKENcccc3333"},
        )
        email = {
            "from": "Jane <jane.secret@example.org>",
            "to": ["bot@example.com"],
            "subject": "hello",
            "text": "hi",
            "message_id": "<m1@example.org>",
        }
        assert _post_json(f"{base}/webhooks/email", email, token="hook-token") == 200
        _get(f"{base}/healthz")  # the one before it is logged by the time this answers
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode()
    for redacted in (
        "/approve/<redacted>",
        "/unsubscribe/<redacted>?x=1",
        "hub.verify_token=<redacted>",
        "phone=<redacted>",
    ):
        assert redacted in output  # the access log ran, and said which request it was
    assert "email from ***@example.org matches no lead" in output  # logged, redacted
    for secret in (*SECRETS, "jane.secret"):
        assert secret not in output


def _post_json(url: str, body: dict[str, object], *, token: str) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        return int(reply.status)


def _health(base: str) -> int | None:
    try:
        return _get(f"{base}/healthz")
    except OSError:
        return None


async def test_sql_errors_do_not_carry_their_parameters(engine: AsyncEngine) -> None:
    row = {"address": "jane.secret@example.com", "reason": "stop", "created_at": utcnow()}
    async with engine.begin() as connection:
        await connection.execute(insert(Suppression), row)
    with pytest.raises(IntegrityError) as caught:
        async with engine.begin() as connection:
            await connection.execute(insert(Suppression), row)
    assert "jane.secret" not in str(caught.value)


@pytest.mark.parametrize(
    "variables",
    [
        {"redis_url": "http://:hunter2@cache.internal:6379/0"},
        {"redis_url": "redis:/user:hunter2@cache"},
        {"database_url": "user:hunter2@db.internal/leads"},
    ],
)
def test_bad_urls_are_named_without_their_password(variables: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(**variables)
    message = str(caught.value)
    assert "hunter2" not in message
    assert ("LEADBOT_REDIS_URL" if "redis_url" in variables else "LEADBOT_DATABASE_URL") in message


def test_the_log_filter_redacts_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("test.redaction")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    install(logger)
    try:
        logger.warning("opted out %s (%s)", "jane.secret@example.org", "stop")
        try:
            raise ValueError("'+5215512345678' is not a possible number")
        except ValueError:
            logger.exception("inbox: turn of %s failed", "+5215512345678")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert "opted out ***@example.org (stop)" in output
    assert "inbox: turn of +***78 failed" in output and "ValueError: '+***78'" in output
    assert "jane.secret" not in output and "55123456" not in output
