"""Settings: every variable read from the environment, bad values named clearly."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from bot.secrets_store import SECRETS_FILE, with_embedded_secrets
from bot.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or LEADBOT_* variables leak into these tests."""
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith(("LEADBOT_", "OPENAI_")):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_mode() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///./leadbot.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.sqlite_path == Path("leadbot.db")
    assert not settings.llm_enabled
    assert settings.dialogs_dir.name == "scripts"


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LEADBOT_PORT=9090\nOPENAI_API_KEY=sk-test\n", encoding="utf-8")
    monkeypatch.setenv("LEADBOT_LLM_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    settings = load_settings()
    assert settings.port == 9090
    assert settings.llm_enabled
    assert settings.openai_base_url == "http://127.0.0.1:1/v1"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LEADBOT_DATABASE_URL", "mysql://x@y/z", "LEADBOT_DATABASE_URL: driver 'mysql'"),
        ("LEADBOT_DATABASE_URL", "not a url", "LEADBOT_DATABASE_URL: not a database URL"),
        ("LEADBOT_PORT", "eighty", "LEADBOT_PORT:"),
        ("LEADBOT_PORT", "70000", "LEADBOT_PORT:"),
        ("LEADBOT_REDIS_URL", "localhost:6379", "LEADBOT_REDIS_URL: expected redis://"),
        ("LEADBOT_DEFAULT_TIMEZONE", "Europe/Atlantis", "LEADBOT_DEFAULT_TIMEZONE: 'Europe/At"),
        ("LEADBOT_DEFAULT_TIMEZONE", "../etc/passwd", "LEADBOT_DEFAULT_TIMEZONE: '../etc/pa"),
        ("LEADBOT_DEFAULT_REGION", "XX", "LEADBOT_DEFAULT_REGION: 'XX' is not a region"),
        ("LEADBOT_DEFAULT_REGION", "USA", "LEADBOT_DEFAULT_REGION: 'USA' is not a region"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert message in str(raised.value)


def test_embedded_secrets_are_generated_once_and_private(tmp_path: Path) -> None:
    settings = load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/data/lb.db")
    first = with_embedded_secrets(settings)
    second = with_embedded_secrets(settings)
    path = tmp_path / "data" / SECRETS_FILE
    stored = json.loads(path.read_text("utf-8"))
    assert len(stored["api_token"]) >= 40
    assert first.api_token.get_secret_value() == stored["api_token"]
    assert second.secret_key.get_secret_value() == stored["secret_key"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configured_secrets_win(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/lb.db", api_token="mine", secret_key="k"
    )
    assert with_embedded_secrets(settings) is settings
    assert not (tmp_path / SECRETS_FILE).exists()


def test_postgres_needs_configured_secrets() -> None:
    settings = load_settings(database_url="postgresql+asyncpg://u@h/db")
    with pytest.raises(SettingsError, match="LEADBOT_SECRET_KEY, LEADBOT_API_TOKEN must be set"):
        with_embedded_secrets(settings)


def test_a_region_in_lower_case_is_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADBOT_DEFAULT_REGION", "gb")
    monkeypatch.setenv("LEADBOT_DEFAULT_TIMEZONE", "Europe/London")
    settings = load_settings()
    assert (settings.default_region, settings.default_timezone) == ("GB", "Europe/London")


def test_every_bad_variable_is_named_on_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADBOT_PORT", "eighty")
    monkeypatch.setenv("LEADBOT_DEFAULT_REGION", "XX")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    [line] = str(raised.value).splitlines()
    assert line.startswith("invalid configuration: LEADBOT_PORT: ")
    assert "; LEADBOT_DEFAULT_REGION: 'XX' is not a region" in line
