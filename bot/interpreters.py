"""Which interpreter turns prospects' replies into answers: chosen once, from the settings.

The LLM interpreter is used when ``LEADBOT_LLM_MODEL`` and ``OPENAI_API_KEY`` are set (it
falls back to the rules on any model failure); otherwise the deterministic rules interpreter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dialogs.interpretation import Interpreter
from dialogs.interpreters.rules import RulesInterpreter

if TYPE_CHECKING:
    from bot.settings import Settings


def build_interpreter(settings: Settings) -> Interpreter:
    """The interpreter the settings ask for."""
    rules = RulesInterpreter()
    if not settings.llm_enabled:
        return rules
    # Imported here: LangChain and the OpenAI SDK take ~0.3 s to import, for nothing without
    # a model (`leadbot chat` on the rules interpreter).
    from dialogs.interpreters.llm import LLMInterpreter

    return LLMInterpreter(
        settings.llm_model,
        settings.openai_base_url or None,
        settings.openai_api_key.get_secret_value(),
        settings.prompts_dir,
        fallback=rules,
    )
