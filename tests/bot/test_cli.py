"""The ``leadbot`` command line, run as an operator would."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from tests.support.lead_csv import write_leads_csv

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)
    values = {"LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    for name in list(os.environ):
        if name.startswith("LEADBOT_"):
            monkeypatch.delenv(name)
    return values


def test_import_reports_created_duplicates_and_rejections(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "leads.csv"
    expected = write_leads_csv(path, 400, bad_share=0.05, dup_share=0.05)
    result = runner.invoke(app, ["leads", "import", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert (
        f"rows: 400  created: {expected.created}  updated: 0  "
        f"duplicates: {expected.duplicates}  rejected: {expected.rejected}"
    ) in result.output
    assert "invalid email address" in result.output
    listing = runner.invoke(app, ["leads", "list", "--limit", "3", "--stage", "new"], env=env)
    assert listing.exit_code == 0
    assert listing.output.count("Company ") == 3
    assert listing.output.count("│ new ") == 3


def test_import_lists_blank_rows_and_duplicates_with_their_lines(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    text = "First Name;Last Name;Email\r\nRené;Dubois;rene@x.fr\r\n;;\r\nR;D;RENE@x.fr\r\n"
    path.write_bytes(text.encode("cp1252"))
    result = runner.invoke(app, ["leads", "import", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "rows: 2  created: 1  updated: 0  duplicates: 1  rejected: 0" in result.output
    assert "blank rows skipped: 1" in result.output
    assert "same person as the lead of line 2" in result.output
    listing = runner.invoke(app, ["leads", "list"], env=env)
    assert "René Dubois" in listing.output


def test_import_of_a_missing_file_fails(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["leads", "import", "nope.csv"], env=env)
    assert result.exit_code == 2


def test_bad_configuration_exits_with_the_variable_named(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env={"LEADBOT_DATABASE_URL": "mysql://x/y"})
    assert result.exit_code == 2
    assert "LEADBOT_DATABASE_URL" in result.output


def test_serve_refuses_a_real_whatsapp_channel_without_the_app_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "LEADBOT_WHATSAPP_TOKEN": "EAAG-real", "LEADBOT_WHATSAPP_PHONE_ID": "1065403"}
    result = runner.invoke(app, ["serve"], env=env, terminal_width=60)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("LEADBOT_WHATSAPP_APP_SECRET is required")
    assert not (tmp_path / "cli.db").exists()  # refused before anything started


def test_db_upgrade(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0
    assert "up to date" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_starts_on_the_embedded_defaults(tmp_path: Path) -> None:
    """The README's first command: a fresh directory, no configuration, /healthz answers."""
    port = _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEADBOT_")}
    environment["LEADBOT_PORT"] = str(port)
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.cli.main", "serve"],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        body = _wait_for_health(port, process)
        assert body == {"status": "ok", "database": "ok"}
        assert (tmp_path / "leadbot.db").exists()
        assert (tmp_path / ".leadbot-secrets.json").exists()
        # Personal data and secrets at rest: owner-only (issue 12, item 24).
        for name in ("leadbot.db", "leadbot.db-wal", ".leadbot-secrets.json"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        process.terminate()
        process.wait(timeout=10)
    # What runs, and what is only half there, is said before it starts (issue 13, item 3).
    output = process.stdout.read().decode() if process.stdout else ""
    assert "  whatsapp    sandbox (`leadbot sandbox chat`;" in output
    assert "  replies     rules interpreter (no LLM)" in output
    assert "warning: LEADBOT_PUBLIC_URL is not set" in output
    assert output.index("  database    SQLite ./leadbot.db") < output.index("Running on http")


def _wait_for_health(port: int, process: subprocess.Popen[bytes]) -> object:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            pytest.fail(f"leadbot serve exited with {process.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
                return json.loads(reply.read())
        except OSError:
            time.sleep(0.1)  # polling for readiness, not covering a race
    pytest.fail("leadbot serve did not answer /healthz within 30 s")
