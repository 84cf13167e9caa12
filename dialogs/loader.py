"""Load dialog scripts from YAML and refuse bad ones with the file, line and reason.

Admins edit ``dialogs/scripts/*.yaml`` by hand, so every problem must point at a line. Files
are read by :func:`dialogs.yaml_source.load_yaml`, which keeps the node tree (it carries
marks); pydantic errors and :meth:`Script.issues` report a path such as
``questions.1.options.3.title``, which is walked back through the nodes to a line number.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from dialogs.errors import FileFormatError
from dialogs.script import DEFER_CHECKS, Script
from dialogs.yaml_source import Loc, Problem, YamlError, YamlFile, load_yaml

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
        for _, script, doc in scripts.values():
            problems.extend(_icp_problems(script, doc, icp))
    return problems


_Loaded = tuple[Path, Script, YamlFile]


def _load_dir(dir: Path, prompts_dir: Path | None) -> tuple[dict[str, _Loaded], list[Problem]]:
    if not dir.is_dir():
        return {}, [Problem(str(dir), None, "not a directory")]
    files = sorted(p for p in dir.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        return {}, [Problem(str(dir), None, "no script files (*.yaml) found")]
    found: dict[str, _Loaded] = {}
    problems: list[Problem] = []
    for path in files:
        script, doc, file_problems = _load(path, prompts_dir)
        problems.extend(file_problems)
        if script is None or doc is None or file_problems:
            continue
        if script.id in found:
            problems.append(
                doc.problem(
                    ("id",),
                    f"id: duplicate script id {script.id!r} (also in {found[script.id][0]})",
                )
            )
            continue
        found[script.id] = (path, script, doc)
    return found, problems


def _load(
    path: Path, prompts_dir: Path | None
) -> tuple[Script | None, YamlFile | None, list[Problem]]:
    try:
        doc = load_yaml(path, expected="a mapping of script fields")
    except YamlError as exc:
        return None, None, exc.problems
    problems = list(doc.duplicates)
    try:
        script = Script.model_validate(doc.data, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(doc.problem(loc, f"{_dotted(loc)}: {err['msg']}"))
        return None, doc, problems
    for issue in script.issues():
        problems.append(doc.problem(issue.loc, f"{_dotted(issue.loc)}: {issue.message}"))
    if prompts_dir is not None and not (prompts_dir / f"{script.prompt}.yaml").is_file():
        problems.append(
            doc.problem(
                ("prompt",), f"prompt: no prompt file {script.prompt}.yaml in {prompts_dir}"
            )
        )
    return script, doc, problems


def _icp_problems(script: Script, doc: YamlFile, icp: Icp) -> list[Problem]:
    out: list[Problem] = []
    for slot, rule in icp.slots.items():
        try:
            i, question = next((i, q) for i, q in enumerate(script.questions) if q.slot == slot)
        except StopIteration:
            out.append(
                doc.problem(
                    ("questions",),
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
                        doc.problem(
                            ("questions", i, "options"),
                            f"questions.{i}.options: the ICP ({icp.version}) scores option "
                            f"{option_id!r} of {slot!r}, which is not one of its options",
                        )
                    )
    return out


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc) or "<script>"
