"""Helpers for tests of the HTTP service."""

from __future__ import annotations

from typing import Any

from bot.settings import Settings

API_TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: nothing read from the environment or a .env file."""
    values: dict[str, Any] = {"api_token": API_TOKEN, "secret_key": "s" * 32}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
