"""LangChain provider packages as this machine has them (tests of the one-line errors)."""

from __future__ import annotations

import importlib.util

import pytest

CANDIDATES = (
    ("anthropic", "langchain_anthropic", "langchain-anthropic"),
    ("ollama", "langchain_ollama", "langchain-ollama"),
    ("groq", "langchain_groq", "langchain-groq"),
    ("xai", "langchain_xai", "langchain-xai"),
)


def absent_provider() -> tuple[str, str]:
    """A provider whose LangChain package is not installed here, and that package's name
    (skips the test when every candidate is installed)."""
    for provider, module, package in CANDIDATES:
        if importlib.util.find_spec(module) is None:
            return provider, package
    pytest.skip("every candidate provider package is installed")
