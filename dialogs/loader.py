"""Load dialog scripts from YAML and refuse bad ones with the file, line and reason.

Admins edit ``dialogs/scripts/*.yaml`` by hand, so every problem must point at a line. The
YAML is composed into nodes first (they carry marks); pydantic errors and
:meth:`Script.issues` report a path such as ``questions.1.options.3.title``, which
:func:`dialogs.yaml_source.line_of` walks back through the node tree to a line number.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from dialogs.errors import FileFormatError
from dialogs.script import DEFER_CHECKS, Script
from dialogs.yaml_source import Loc, Problem, duplicate_keys, line_of

if TYPE_CHECKING:
    from dialogs.icp import Icp


class ScriptError(FileFormatError):
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


def load_scripts(
    dir: Path | str, *, prompts_dir: Path | str | None = None, resource_url: str = ""
) -> dict[str, Script]:
    """Every script in ``dir`` (``*.yaml``/``*.yml``) by id; :class:`ScriptError` if any is
    invalid or two files share an id, so a bad edit fails startup instead of a conversation.

    ``resource_url`` (``LEADBOT_RESOURCE_URL``) is the deflection link of scripts that name
    none of their own.
    """
    scripts, problems = _load_dir(Path(dir), None if prompts_dir is None else Path(prompts_dir))
    if problems:
        raise ScriptError(problems)
    return {
        script_id: (
            script.model_copy(update={"resource_url": resource_url})
            if resource_url and not script.resource_url
            else script
        )
        for script_id, (_, script, _) in scripts.items()
    }


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
                    line_of(root, ("id",)),
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

    problems = [Problem(file, line, msg) for line, msg in duplicate_keys(root)]
    try:
        script = Script.model_validate(data, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(Problem(file, line_of(root, loc), f"{_dotted(loc)}: {err['msg']}"))
        return None, root, problems
    for issue in script.issues():
        problems.append(
            Problem(file, line_of(root, issue.loc), f"{_dotted(issue.loc)}: {issue.message}")
        )
    if prompts_dir is not None and not (prompts_dir / f"{script.prompt}.yaml").is_file():
        problems.append(
            Problem(
                file,
                line_of(root, ("prompt",)),
                f"prompt: no prompt file {script.prompt}.yaml in {prompts_dir}",
            )
        )
    return script, root, problems


def _icp_problems(file: str, script: Script, root: yaml.Node | None, icp: Icp) -> list[Problem]:
    out: list[Problem] = []
    for slot, rule in icp.slots.items():
        try:
            i, question = next((i, q) for i, q in enumerate(script.questions) if q.slot == slot)
        except StopIteration:
            out.append(
                Problem(
                    file,
                    line_of(root, ("questions",)),
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
                            line_of(root, ("questions", i, "options")),
                            f"questions.{i}.options: the ICP ({icp.version}) scores option "
                            f"{option_id!r} of {slot!r}, which is not one of its options",
                        )
                    )
    return out


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "<script>"
