"""The one chat-model factory: LangChain's init_chat_model from LEADBOT_LLM_MODEL, against the
fake OpenAI-compatible server; and the one-line errors for what cannot be built."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from langchain_core.messages import HumanMessage
from pydantic import BaseModel, ConfigDict

from dialogs.errors import ConfigError
from dialogs.llm_model import ModelConfigError, chat_model, parse_model, structured
from tests.support.fakes.openai_server import FakeOpenAI
from tests.support.providers import absent_provider


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


@pytest.mark.parametrize(
    ("setting", "provider", "name"),
    [
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("openai:gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("llama3.1:8b", "openai", "llama3.1:8b"),  # a tag, not a provider: OpenAI-compatible
        ("openai:qwen:7b", "openai", "qwen:7b"),
        ("anthropic:claude-sonnet-4-5", "anthropic", "claude-sonnet-4-5"),
        ("ollama:llama3.1", "ollama", "llama3.1"),
        ("google-genai:gemini-2.5-flash", "google_genai", "gemini-2.5-flash"),
    ],
)
def test_the_setting_names_a_provider_and_a_model(setting: str, provider: str, name: str) -> None:
    spec = parse_model(setting)
    assert (spec.provider, spec.name) == (provider, name)


def test_an_unknown_provider_is_one_line_with_the_way_out() -> None:
    with pytest.raises(ModelConfigError) as caught:
        parse_model("antropic:claude-sonnet-4-5")
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown provider 'antropic'" in message
    assert "anthropic" in message  # the known ones are listed
    assert "openai:antropic:claude-sonnet-4-5" in message  # and how to mean a model name
    assert isinstance(caught.value, ConfigError)


def test_a_missing_provider_package_is_one_line_naming_it() -> None:
    provider, package = absent_provider()
    with pytest.raises(ModelConfigError) as caught:
        chat_model(f"{provider}:some-model", api_key="k")
    message = str(caught.value)
    assert "\n" not in message
    assert f"pip install {package}" in message
    assert f"{provider}:some-model" in message


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ok: bool


@pytest.mark.parametrize("setting", ["openai:gpt-4o-mini", "gpt-4o-mini", "llama3.1:8b"])
async def test_openai_models_reach_the_server_by_chat_completions(
    fake: FakeOpenAI, setting: str
) -> None:
    """A provider-prefixed name and a plain name with a base URL both hit the fake (it serves
    Chat Completions only, so the Responses API would fail) with structured output."""
    chat = chat_model(setting, api_key="sk-test", base_url=fake.base_url, timeout=5.0)
    fake.reply_json({"ok": True})
    out = await structured(chat, Answer).ainvoke([HumanMessage("hi")])
    assert out["parsed"] == Answer(ok=True)
    (body,) = fake.requests
    assert body["model"] == parse_model(setting).name
    assert body["response_format"]["type"] == "json_schema"
    assert body["temperature"] == 0
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"
