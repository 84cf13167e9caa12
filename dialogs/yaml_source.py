"""Pointing admins at the line of a YAML file that is wrong.

Scripts, the ICP and cadences are YAML files people edit by hand; every problem found in one
is reported as ``file:line: reason``. PyYAML's node tree (``yaml.compose``) keeps the marks
that pydantic's error locations are mapped back to here.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a file cannot be used. ``line`` is 1-based, None when unknown."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


def line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """The line of the deepest node on ``loc`` that exists in the document.

    A mapping key points at the key's own line (``outcomes:``), not its value's first line;
    parts that are not in the document (a missing field, pydantic's union tags) are skipped,
    so the answer is the closest enclosing node.
    """
    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    node, line = value, key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
    return line


def duplicate_keys(node: yaml.Node) -> list[tuple[int, str]]:
    """Every key given twice in one mapping, as (line, message)."""
    # PyYAML silently keeps the last of two equal keys; an admin's copy-paste slip should fail.
    out: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    out.append((key.start_mark.line + 1, f"duplicate key {key.value!r}"))
                seen.add(key.value)
            out.extend(duplicate_keys(value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out.extend(duplicate_keys(item))
    return out
