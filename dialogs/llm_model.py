"""The one place a chat model is built: LangChain's ``init_chat_model`` from the settings.

``LEADBOT_LLM_MODEL`` names the model, optionally behind a LangChain provider prefix:
``openai:gpt-4o-mini``, ``anthropic:claude-sonnet-4-5``, ``ollama:llama3.1``. A plain name
(``gpt-4o-mini``, ``llama3.1:8b``) is a model on an OpenAI-compatible server
(``OPENAI_BASE_URL``, ``OPENAI_API_KEY``), as before providers could be named. OpenAI models
use Chat Completions (``use_responses_api=False``): every OpenAI-compatible server has it.

Provider packages other than ``langchain-openai`` are optional: :func:`chat_model` turns a
missing one, an unknown provider or a missing key into :class:`ModelConfigError`, one line
naming what to install or set, so ``leadbot serve`` refuses to start instead of falling back
to the rules on every message. LangChain is imported only when a model is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dialogs.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable
    from pydantic import BaseModel

OPENAI = "openai"

# The provider prefixes LangChain's init_chat_model knows (langchain 1.x), with the
# variable each provider's SDK reads its key from; None: no key (a local server) or
# credentials of another kind (cloud IAM), which the SDK finds itself.
PROVIDERS: dict[str, str | None] = {
    "anthropic": "ANTHROPIC_API_KEY",
    "anthropic_bedrock": None,
    "azure_ai": "AZURE_AI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "baseten": "BASETEN_API_KEY",
    "bedrock": None,
    "bedrock_converse": None,
    "cohere": "COHERE_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "google_anthropic_vertex": None,
    "google_genai": "GOOGLE_API_KEY",
    "google_vertexai": None,
    "groq": "GROQ_API_KEY",
    "huggingface": None,
    "ibm": "WATSONX_APIKEY",
    "litellm": None,
    "mistralai": "MISTRAL_API_KEY",
    "nvidia": "NVIDIA_API_KEY",
    "ollama": None,
    OPENAI: "OPENAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "perplexity": "PPLX_API_KEY",
    "together": "TOGETHER_API_KEY",
    "upstage": "UPSTAGE_API_KEY",
    "xai": "XAI_API_KEY",
}
# "word:" at the start is a provider prefix; "llama3.1:8b" is a model name with a tag.
_PREFIX = re.compile(r"^([a-z][a-z_-]*):(.+)$")


class ModelConfigError(ConfigError, ValueError):
    """``LEADBOT_LLM_MODEL`` cannot be used as configured; the message is one line."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A parsed ``LEADBOT_LLM_MODEL``: the LangChain provider and the provider's model name."""

    provider: str
    name: str

    @property
    def key_variable(self) -> str | None:
        """The environment variable the provider's key is read from, if it takes one."""
        return PROVIDERS.get(self.provider)


def parse_model(model: str) -> ModelSpec:
    """``"anthropic:claude-x"`` → (anthropic, claude-x); a plain name → (openai, name).

    Raises :class:`ModelConfigError` for a prefix that is no provider LangChain knows
    (a model name that itself looks like ``word:tag`` is written ``openai:word:tag``).
    """
    model = model.strip()
    match = _PREFIX.match(model)
    if match is None:
        if not model:
            raise ModelConfigError("LEADBOT_LLM_MODEL is empty")
        return ModelSpec(OPENAI, model)
    provider = match.group(1).replace("-", "_")
    if provider not in PROVIDERS:
        raise ModelConfigError(
            f"LEADBOT_LLM_MODEL={model!r}: unknown provider {match.group(1)!r} (known: "
            f"{', '.join(sorted(PROVIDERS))}); for a model named like that on an "
            f"OpenAI-compatible server write 'openai:{model}'"
        )
    return ModelSpec(provider, match.group(2))


def chat_model(
    model: str,
    *,
    api_key: str = "",
    base_url: str | None = None,
    temperature: float = 0.0,
    timeout: float = 8.0,
    max_retries: int = 1,
) -> BaseChatModel:
    """The chat model ``model`` names, built by LangChain's ``init_chat_model``.

    ``api_key`` is the provider's key (empty: its SDK reads its own variable);
    ``base_url`` is ``OPENAI_BASE_URL`` and applies to the OpenAI provider only.
    Raises :class:`ModelConfigError` (one line) when the model cannot be built.
    """
    spec = parse_model(model)
    kwargs: dict[str, Any] = {"temperature": temperature}
    if spec.provider == "ollama":
        kwargs["client_kwargs"] = {"timeout": timeout}  # ChatOllama has no timeout field
    else:
        kwargs.update(timeout=timeout, max_retries=max_retries)
    if api_key:
        kwargs["api_key"] = api_key
    if spec.provider == OPENAI:
        kwargs["use_responses_api"] = False
        if base_url:
            kwargs["base_url"] = base_url
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:  # pragma: no cover - a dependency of leadbot itself
        raise ModelConfigError(
            "LEADBOT_LLM_MODEL needs LangChain's langchain package: pip install langchain"
        ) from None
    try:
        chat: BaseChatModel = init_chat_model(spec.name, model_provider=spec.provider, **kwargs)
    except ImportError:
        package = _package(spec.provider)
        raise ModelConfigError(
            f"LEADBOT_LLM_MODEL={model!r} needs the {package} package: pip install {package}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the SDK's own check (a key, an option) failed
        detail = " ".join(str(exc).split())[:300]
        raise ModelConfigError(
            f"LEADBOT_LLM_MODEL={model!r}: the {spec.provider} model cannot be built: {detail}"
        ) from None
    return chat


def _package(provider: str) -> str:
    """The pip package of ``provider``'s LangChain integration (langchain_aws → langchain-aws)."""
    special = {
        "anthropic_bedrock": "langchain-aws",
        "bedrock": "langchain-aws",
        "bedrock_converse": "langchain-aws",
        "azure_openai": "langchain-openai",
        "azure_ai": "langchain-azure-ai",
        "google_anthropic_vertex": "langchain-google-vertexai",
        "google_vertexai": "langchain-google-vertexai",
        "mistralai": "langchain-mistralai",
        "nvidia": "langchain-nvidia-ai-endpoints",
    }
    return special.get(provider, f"langchain-{provider.replace('_', '-')}")


def structured(chat: BaseChatModel, schema: type[BaseModel]) -> Runnable[Any, Any]:
    """``chat`` answering in ``schema``, with the raw message (``include_raw``) for checks.

    JSON-schema output where the provider offers it (OpenAI-compatible servers, Anthropic,
    Ollama); the provider's default method (tool calling) where it does not.
    """
    try:
        return chat.with_structured_output(schema, method="json_schema", include_raw=True)
    except (ValueError, NotImplementedError, TypeError):
        return chat.with_structured_output(schema, include_raw=True)
