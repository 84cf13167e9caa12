"""Interpreters turn a prospect's message into an :class:`~dialogs.interpretation.Interpretation`:
:mod:`~dialogs.interpreters.rules` (fast, deterministic, always available) and
:mod:`~dialogs.interpreters.llm` (a model via LangChain, falling back to the rules)."""
