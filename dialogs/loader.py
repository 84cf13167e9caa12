"""Load dialog scripts from YAML and refuse bad ones with the file, line and reason.

Admins edit ``dialogs/scripts/*.yaml`` by hand, so every problem must point at a line. The
YAML is composed into nodes first (they carry marks); pydantic errors and
:meth:`Script.issues` report a path such as ``questions.1.options.3.title``, which
:func:`_line_of` walks back through the node tree to a line number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from dialogs.script import DEFER_CHECKS, Script

if TYPE_CHECKING:
    from dialogs.icp import Icp

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a script file cannot be used. ``line`` is 1-based, None when unknown."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class ScriptError(Exception):
    """One or more script files are invalid; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid script")


def load_script(path: Path | str, *, prompts_dir: Path | str | None = None) -> Script:
    """Read and validate one script file; :class:`ScriptError` lists every problem."""
    script, _, problems = _load(Path(path), None if prompts_dir is None else Path(prompts_dir))
    if problems or script is None:
        raise ScriptError(problems)
    return script


def load_scripts(dir: Path | str, *, prompts_dir: Path | str | None = None) -> dict[str, Script]:
    """Every script in ``dir`` (``*.yaml``/``*.yml``) by id; :class:`ScriptError` if any is
    invalid or two files share an id, so a bad edit fails startup instead of a conversation."""
    scripts, problems = _load_dir(Path(dir), None if prompts_dir is None else Path(prompts_dir))
    if problems:
        raise ScriptError(problems)
    return {script_id: script for script_id, (_, script, _) in scripts.items()}


def check_dir(
    dir: Path | str, prompts_dir: Path | str | None = None, *, icp: Icp | None = None
) -> list[Problem]:
    """Every problem in the scripts under ``dir`` (empty when all are sound).

    With ``prompts_dir``, each script's ``prompt`` must name a file there. With ``icp``, every
    slot the ICP scores must be asked and every option id it scores must exist.
    """
    scripts, problems = _load_dir(Path(dir), None if prompts_dir is None else Path(prompts_dir))
    if icp is not None:
        for path, script, root in scripts.values():
            problems.extend(_icp_problems(str(path), script, root, icp))
    return problems


_Loaded = tuple[Path, Script, yaml.Node]


def _load_dir(dir: Path, prompts_dir: Path | None) -> tuple[dict[str, _Loaded], list[Problem]]:
    if not dir.is_dir():
        return {}, [Problem(str(dir), None, "not a directory")]
    files = sorted(p for p in dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        return {}, [Problem(str(dir), None, "no script files (*.yaml) found")]
    found: dict[str, _Loaded] = {}
    problems: list[Problem] = []
    for path in files:
        script, root, file_problems = _load(path, prompts_dir)
        problems.extend(file_problems)
        if script is None or root is None or file_problems:
            continue
        if script.id in found:
            problems.append(
                Problem(
                    str(path),
                    _line_of(root, ("id",)),
                    f"id: duplicate script id {script.id!r} (also in {found[script.id][0]})",
                )
            )
            continue
        found[script.id] = (path, script, root)
    return found, problems


def _load(
    path: Path, prompts_dir: Path | None
) -> tuple[Script | None, yaml.Node | None, list[Problem]]:
    file = str(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, None, [Problem(file, None, f"cannot read: {exc}")]
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
            data = None if root is None else loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        return None, None, [Problem(file, line, f"invalid YAML: {exc.problem}")]
    except yaml.YAMLError as exc:
        return None, None, [Problem(file, None, f"invalid YAML: {exc}")]
    if root is None or not isinstance(data, dict):
        line = None if root is None else root.start_mark.line + 1
        return None, root, [Problem(file, line, "expected a mapping of script fields")]

    problems = [Problem(file, line, msg) for line, msg in _duplicate_keys(root)]
    try:
        script = Script.model_validate(data, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(Problem(file, _line_of(root, loc), f"{_dotted(loc)}: {err['msg']}"))
        return None, root, problems
    for issue in script.issues():
        problems.append(
            Problem(file, _line_of(root, issue.loc), f"{_dotted(issue.loc)}: {issue.message}")
        )
    if prompts_dir is not None and not (prompts_dir / f"{script.prompt}.yaml").is_file():
        problems.append(
            Problem(
                file,
                _line_of(root, ("prompt",)),
                f"prompt: no prompt file {script.prompt}.yaml in {prompts_dir}",
            )
        )
    return script, root, problems


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
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


def _duplicate_keys(node: yaml.Node) -> list[tuple[int, str]]:
    # PyYAML silently keeps the last of two equal keys; an admin's copy-paste slip should fail.
    out: list[tuple[int, str]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    out.append((key.start_mark.line + 1, f"duplicate key {key.value!r}"))
                seen.add(key.value)
            out.extend(_duplicate_keys(value))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out.extend(_duplicate_keys(item))
    return out


def _icp_problems(file: str, script: Script, root: yaml.Node | None, icp: Icp) -> list[Problem]:
    out: list[Problem] = []
    for slot, rule in icp.slots.items():
        try:
            i, question = next((i, q) for i, q in enumerate(script.questions) if q.slot == slot)
        except StopIteration:
            out.append(
                Problem(
                    file,
                    _line_of(root, ("questions",)),
                    f"questions: unknown slot {slot!r}: the ICP ({icp.version}) scores it "
                    "but no question asks it",
                )
            )
            continue
        if question.options:
            ids = {o.id for o in question.options}
            for option_id in rule.points:
                if option_id not in ids:
                    out.append(
                        Problem(
                            file,
                            _line_of(root, ("questions", i, "options")),
                            f"questions.{i}.options: the ICP ({icp.version}) scores option "
                            f"{option_id!r} of {slot!r}, which is not one of its options",
                        )
                    )
    return out


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "<script>"
