"""What the intake's model readers share: a prompt file and the chat model that answers it."""

from __future__ import annotations

from pathlib import Path

from dialogs.llm_model import chat_model
from dialogs.prompts import LoadedPrompt, load_prompt


class ModelReader:
    """A versioned prompt and a chat model of LEADBOT_LLM_MODEL: deterministic (temperature
    0), one retry, and ``_deadline`` seconds in all for a call (the client's timeout covers
    one attempt; the deadline bounds the retry too)."""

    def __init__(
        self,
        model: str,
        prompt_name: str,
        *,
        api_key: str,
        base_url: str | None,
        prompts_dir: Path,
        timeout: float,
    ) -> None:
        self.prompt: LoadedPrompt = load_prompt(prompts_dir, prompt_name)
        self._chat = chat_model(
            model,
            api_key=api_key,
            base_url=base_url,
            temperature=0,
            timeout=timeout,
            max_retries=1,
        )
        self._deadline = timeout * 2 + 1
