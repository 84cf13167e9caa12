"""Which interpreter turns prospects' replies into answers: chosen once, from the settings.

The LLM interpreter is used when ``LEADBOT_LLM_MODEL`` is set (with ``OPENAI_API_KEY`` for an
OpenAI-compatible model; another provider's key from its own variable); it falls back to the
rules on any model failure. Otherwise the deterministic rules interpreter. :func:`check_llm`
refuses, at start, a model that cannot be built at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.settings import SettingsError
from dialogs.interpretation import Interpreter
from dialogs.interpreters.rules import RulesInterpreter
from dialogs.llm_model import OPENAI, ModelConfigError, chat_model, parse_model

if TYPE_CHECKING:
    from bot.settings import Settings


def check_llm(settings: Settings) -> None:
    """Raise :class:`SettingsError` (one line) when ``LEADBOT_LLM_MODEL`` names an unknown
    provider, one whose LangChain package is not installed, or one whose key is missing."""
    if not settings.llm_model:
        return
    try:
        spec = parse_model(settings.llm_model)
        if spec.provider == OPENAI and not settings.llm_key:
            raise SettingsError(
                f"LEADBOT_LLM_MODEL={settings.llm_model!r} needs a key: set OPENAI_API_KEY "
                "(a local OpenAI-compatible server without keys takes any value, e.g. none)"
            )
        if spec.provider != OPENAI and spec.key_variable and not settings.llm_key:
            raise SettingsError(
                f"LEADBOT_LLM_MODEL={settings.llm_model!r} needs a key: set "
                f"{spec.key_variable} (or LEADBOT_LLM_API_KEY)"
            )
        if settings.llm_enabled:
            # Built once here, not on the first message: a missing package shows now.
            chat_model(
                settings.llm_model,
                api_key=settings.llm_key,
                base_url=settings.openai_base_url or None,
            )
    except ModelConfigError as exc:
        raise SettingsError(str(exc)) from None


def build_interpreter(settings: Settings) -> Interpreter:
    """The interpreter the settings ask for; :class:`SettingsError` when the model named
    cannot be used (``leadbot chat`` runs no :func:`check_llm` of its own)."""
    rules = RulesInterpreter()
    check_llm(settings)  # a model named but unusable is refused, never silently the rules
    if not settings.llm_enabled:
        return rules
    # Imported here: LangChain and the OpenAI SDK take ~0.3 s to import, for nothing without
    # a model (`leadbot chat` on the rules interpreter).
    from dialogs.interpreters.llm import LLMInterpreter

    return LLMInterpreter(
        settings.llm_model,
        settings.openai_base_url or None,
        settings.llm_key,
        settings.prompts_dir,
        fallback=rules,
    )
