"""LEADBOT_LLM_MODEL on any provider, checked at start: an unknown provider, a provider whose
package is not installed, or one whose key is missing is one line and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.main import app
from bot.cli.setup_report import check_setup, setup_warnings
from bot.interpreters import build_interpreter, check_llm
from bot.settings import SettingsError
from dialogs.interpreters.llm import LLMInterpreter
from tests.bot.support import make_settings
from tests.support.providers import absent_provider

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key of the developer's shell decides a test."""
    for name in list(os.environ):
        ours = name.startswith(("LEADBOT_", "OPENAI_")) and not name.startswith("LEADBOT_TEST_")
        if ours or name.endswith("_API_KEY"):
            monkeypatch.delenv(name)


def test_an_openai_compatible_model_passes_and_is_used() -> None:
    settings = make_settings(
        llm_model="llama3.1:8b", openai_api_key="none", openai_base_url="http://127.0.0.1:1/v1"
    )
    check_llm(settings)
    assert isinstance(build_interpreter(settings), LLMInterpreter)


def test_a_plain_model_without_openai_key_is_refused_at_start() -> None:
    settings = make_settings(llm_model="gpt-4o-mini")
    with pytest.raises(SettingsError) as caught:
        check_setup(settings)
    assert str(caught.value).startswith(
        "LEADBOT_LLM_MODEL='gpt-4o-mini' needs a key: set OPENAI_API_KEY"
    )
    assert "\n" not in str(caught.value)
    with pytest.raises(SettingsError):
        build_interpreter(settings)  # leadbot chat too


def test_an_unknown_provider_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown provider 'antropic'"):
        check_setup(make_settings(llm_model="antropic:claude-sonnet-4-5"))


def test_a_missing_key_is_refused_naming_the_variable() -> None:
    with pytest.raises(SettingsError) as caught:
        check_llm(make_settings(llm_model="anthropic:claude-sonnet-4-5"))
    assert str(caught.value) == (
        "LEADBOT_LLM_MODEL='anthropic:claude-sonnet-4-5' needs a key: set ANTHROPIC_API_KEY "
        "(or LEADBOT_LLM_API_KEY)"
    )


def test_a_provider_key_is_read_from_its_own_variable_or_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(llm_model="anthropic:claude-sonnet-4-5")
    assert settings.llm_key == "" and settings.llm_enabled
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    assert settings.llm_key == "sk-ant-env"
    ours = make_settings(llm_model="anthropic:claude-sonnet-4-5", llm_api_key="sk-ant-ours")
    assert ours.llm_key == "sk-ant-ours"
    # The OpenAI key is not another provider's key, nor the other way round.
    assert make_settings(llm_model="gpt-4o-mini", llm_api_key="x").llm_key == ""
    assert not any("OPENAI_API_KEY" in w for w in setup_warnings(settings))


def test_a_missing_provider_package_is_refused_naming_the_package() -> None:
    provider, package = absent_provider()
    settings = make_settings(llm_model=f"{provider}:some-model", llm_api_key="k")
    with pytest.raises(SettingsError, match=f"pip install {package}"):
        check_setup(settings)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["scheduler"]])
def test_the_service_does_not_start_and_says_why_in_one_line(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, package = absent_provider()
    monkeypatch.chdir(tmp_path)
    env = {
        "LEADBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "LEADBOT_LLM_MODEL": f"{provider}:some-model",
        "LEADBOT_LLM_API_KEY": "k",
    }
    result = runner.invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line == (
        f"LEADBOT_LLM_MODEL='{provider}:some-model' needs the {package} package: "
        f"pip install {package}"
    )


def test_leadbot_chat_refuses_a_model_it_cannot_use_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`leadbot chat` builds the interpreter without the service's start-up checks."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["chat"], env={"LEADBOT_LLM_MODEL": "anthropic:claude-sonnet-4-5"}, input=""
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "LEADBOT_LLM_MODEL='anthropic:claude-sonnet-4-5' needs a key: set ANTHROPIC_API_KEY "
        "(or LEADBOT_LLM_API_KEY)"
    )
