"""Prompt templates as files: ``prompts/<name>.yaml`` with ``version``, ``system``, ``human``.

Our own small YAML format plus ``ChatPromptTemplate.from_messages`` (LangChain's file loaders
are deprecated). Templates are f-strings: a literal brace is written ``{{``. Values passed in
are not re-templated, so prospect text containing ``{company}`` stays literal. Optional keys:
``variables`` (the names the templates must use, checked on load so a typo fails at start-up,
not on a prospect's message) and ``history: true`` (a ``history`` messages placeholder
between the system and the human message).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from dialogs.errors import FileFormatError
from dialogs.yaml_source import YamlError, load_yaml

REQUIRED_KEYS = ("version", "system", "human")
_KNOWN_KEYS = frozenset({*REQUIRED_KEYS, "variables", "history", "description"})


class PromptError(FileFormatError, ValueError):
    """A prompt file cannot be used; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        super().__init__(f"{path}: {reason}" if line is None else f"{path}:{line}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.line = line


@dataclass(frozen=True, slots=True)
class LoadedPrompt:
    """A prompt ready to format; ``version`` is stored with every decision it helped make."""

    name: str
    version: str
    template: ChatPromptTemplate
    path: Path


def load_prompt(prompts_dir: Path | str, name: str) -> LoadedPrompt:
    """Load ``<prompts_dir>/<name>.yaml``; :class:`PromptError` says which file and why."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise PromptError(Path(prompts_dir) / str(name), "invalid prompt name")
    path = Path(prompts_dir) / f"{name}.yaml"
    try:
        doc = load_yaml(path, expected="a mapping with keys: " + ", ".join(REQUIRED_KEYS))
        doc.refuse_duplicates()
    except YamlError as exc:
        raise PromptError(path, exc.reason, exc.line) from None
    data = doc.data
    missing = [k for k in REQUIRED_KEYS if data.get(k) in (None, "")]
    if missing:
        raise PromptError(path, "missing key(s): " + ", ".join(missing))
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise PromptError(path, "unknown key(s): " + ", ".join(unknown))
    for key in ("system", "human"):
        if not isinstance(data[key], str):
            raise PromptError(path, f"{key!r} must be text")
    version = data["version"]
    if not isinstance(version, str | int | float):
        raise PromptError(path, "'version' must be a string")

    messages: list[tuple[str, str] | MessagesPlaceholder] = [("system", data["system"])]
    if data.get("history"):
        messages.append(MessagesPlaceholder("history", optional=True))
    messages.append(("human", data["human"]))
    try:
        template = ChatPromptTemplate.from_messages(messages)
    except (ValueError, KeyError) as exc:  # unbalanced braces and the like
        raise PromptError(path, f"bad template (write a literal brace as '{{{{'): {exc}") from exc

    declared = data.get("variables")
    if declared is not None:
        if not isinstance(declared, list) or not all(isinstance(v, str) for v in declared):
            raise PromptError(path, "'variables' must be a list of names")
        used = set(template.input_variables)
        if used != set(declared):
            raise PromptError(
                path,
                f"templates use {sorted(used)} but 'variables' declares {sorted(declared)}",
            )
    return LoadedPrompt(name=name, version=str(version), template=template, path=path)
