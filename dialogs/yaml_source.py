"""The one way the project reads YAML: data plus the line of everything in it.

Scripts, the ICP, cadences and prompts are YAML files people edit by hand; every problem found
in one is reported as ``file:line: reason``. :func:`load_yaml` reads a file into its data and
the node tree PyYAML composed it from (the nodes keep the marks that pydantic's error
locations are mapped back to, :func:`line_of`); :func:`parse_yaml` does the same for text
that is not a file yet (a script edited in the console). It refuses, as a
:class:`YamlError` with the line, a file that cannot be read, is not valid YAML (tabs,
unclosed brackets, a scalar no constructor accepts such as ``2024-13-01``), is empty or
whose top level is not a mapping. A key given twice in one mapping is listed in
:attr:`YamlFile.duplicates`: loaders that collect every problem of a file report them with
the rest, the others call :meth:`YamlFile.refuse_duplicates`; both refuse the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dialogs.errors import FileFormatError

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


class YamlError(FileFormatError, ValueError):
    """A YAML file cannot be used. ``file``, ``line`` and ``reason`` are those of the first
    of ``problems`` (every reason found, usually one); the message is ``file:line: reason``,
    one line per problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        if not self.problems:
            raise ValueError("YamlError needs at least one problem")
        first = self.problems[0]
        self.file, self.line, self.reason = first.file, first.line, first.message
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class YamlFile:
    """A YAML file read by :func:`load_yaml`: its top-level mapping and the nodes behind it."""

    file: str
    data: dict[Any, Any]
    root: yaml.MappingNode
    duplicates: tuple[Problem, ...]
    """Every key given twice in one mapping (PyYAML would silently keep the last)."""

    def line(self, loc: Loc) -> int | None:
        """The line of ``loc`` (a pydantic error location) in this file; see :func:`line_of`."""
        return line_of(self.root, loc)

    def problem(self, loc: Loc, message: str) -> Problem:
        """A :class:`Problem` at the line of ``loc``."""
        return Problem(self.file, self.line(loc), message)

    def value_span(self, key: str) -> tuple[int, int] | None:
        """Where the scalar value of top-level ``key`` is in the text (start and end
        offsets), None when there is no such scalar: text can be changed in place there."""
        for node, value in self.root.value:
            if isinstance(node, yaml.ScalarNode) and node.value == key:
                if isinstance(value, yaml.ScalarNode):
                    return value.start_mark.index, value.end_mark.index
                return None
        return None

    def refuse_duplicates(self) -> None:
        """Raise :class:`YamlError` listing the duplicate keys, if there are any."""
        if self.duplicates:
            raise YamlError(self.duplicates)


def load_yaml(path: Path | str, *, expected: str = "a mapping") -> YamlFile:
    """Read the YAML file at ``path``, whose top level must be a mapping.

    :class:`YamlError` (one problem, with its line where the file has one) when the file
    cannot be read, is not valid YAML, is empty or is not a mapping; ``expected`` names what
    the top level should be (``"a mapping with version and sequences"``).
    """
    file = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except FileNotFoundError:
        raise YamlError([Problem(file, None, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlError([Problem(file, None, f"cannot read: {exc}")]) from None
    return parse_yaml(text, file, expected=expected)


def parse_yaml(text: str, file: str, *, expected: str = "a mapping") -> YamlFile:
    """``text`` read as a YAML document whose top level must be a mapping; problems are
    reported against ``file`` (a path, or a name such as ``b2b_default (edited)`` for text
    typed in the console). The same checks as :func:`load_yaml`, which reads a file and
    calls this."""
    root, data = _compose(file, text)
    if root is None:
        raise YamlError([Problem(file, 1, f"the file is empty; expected {expected}")])
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise YamlError([Problem(file, root.start_mark.line + 1, f"expected {expected}")])
    duplicates = tuple(Problem(file, line, message) for line, message in duplicate_keys(root))
    return YamlFile(file, data, root, duplicates)


def parse_value(text: str) -> Any:
    """``text`` read as one YAML value (``[a, b]``, ``2000``, ``later``); :class:`YamlError`
    (file ``<value>``) if it is not valid YAML."""
    _, data = _compose("<value>", text)
    return data


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader whose constructors fail as YAML errors with the node's mark.

    The implicit resolvers hand a scalar such as ``2024-13-01`` to a constructor that raises
    a plain ValueError (month out of range), without a line; re-raised here as a
    ``ConstructorError`` at the scalar.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise yaml.constructor.ConstructorError(
                None, None, f"bad value {node.value!r}: {exc}", node.start_mark
            ) from exc


def _compose(file: str, text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree of the single document in ``text`` and its data; :class:`YamlError`
    with the line of the problem when ``text`` is not valid YAML."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = None if root is None else loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise YamlError([Problem(file, line, f"invalid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise YamlError([Problem(file, None, f"invalid YAML: {exc}")]) from None
    finally:
        loader.dispose()
    return root, data


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
