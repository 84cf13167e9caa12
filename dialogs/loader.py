"""Load dialog scripts from YAML and refuse bad ones with the file, line and reason.

Admins edit ``dialogs/scripts/*.yaml`` by hand, or a script's text in the console, so every
problem must point at a line. Files are read by :func:`dialogs.yaml_source.load_yaml` and text
by :func:`dialogs.yaml_source.parse_yaml`, which keep the node tree (it carries marks);
pydantic errors and :meth:`Script.issues` report a path such as
``questions.1.options.3.title``, which is walked back through the nodes to a line number.
Files and text go through the same checks (:func:`_validate`), the ICP's included when one
is given (:func:`check_dir`, :func:`check_script_text`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from dialogs.errors import FileFormatError
from dialogs.experiments import experiment_issues
from dialogs.script import DEFER_CHECKS, Script
from dialogs.yaml_source import Loc, Problem, YamlError, YamlFile, load_yaml, parse_yaml

if TYPE_CHECKING:
    from dialogs.icp import Icp

EXPECTED = "a mapping of script fields"


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


def load_script_text(
    text: str,
    name: str = "<script>",
    *,
    prompts_dir: Path | str | None = None,
    icp: Icp | None = None,
) -> Script:
    """Validate script YAML given as text (``name`` stands for the file in problems), with
    the checks of :func:`check_dir`; :class:`ScriptError` lists every problem."""
    script, problems = check_script_text(text, name, prompts_dir=prompts_dir, icp=icp)
    if problems or script is None:
        raise ScriptError(problems)
    return script


def check_script_text(
    text: str,
    name: str = "<script>",
    *,
    prompts_dir: Path | str | None = None,
    icp: Icp | None = None,
) -> tuple[Script | None, list[Problem]]:
    """The script in ``text`` and every problem with it (the script is None when it could
    not be built; it may come with problems). The checks of ``leadbot dialogs check``, in
    the same order: YAML, fields, the script's own rules, its prompt file (with
    ``prompts_dir``), then, for a script sound so far, the slots and options the ICP scores
    (with ``icp``)."""
    try:
        doc = parse_yaml(text, name, expected=EXPECTED)
    except YamlError as exc:
        return None, exc.problems
    script, problems = _validate(doc, None if prompts_dir is None else Path(prompts_dir))
    if script is not None and icp is not None and not problems:  # as check_dir does
        problems.extend(_icp_problems(script, doc, icp))
    return script, problems


def set_version(text: str, version: str, name: str = "<script>") -> str:
    """``text`` with its top-level ``version:`` value replaced by ``version`` (quoted), the
    rest of the text as it was; :class:`ScriptError` when the text has no such scalar."""
    try:
        doc = parse_yaml(text, name, expected=EXPECTED)
    except YamlError as exc:
        raise ScriptError(exc.problems) from None
    span = doc.value_span("version")
    if span is None:
        raise ScriptError([doc.problem(("version",), "version: no version to set")])
    start, end = span
    # A JSON string is a YAML double-quoted scalar: any version text stays one value.
    return f"{text[:start]}{json.dumps(version, ensure_ascii=False)}{text[end:]}"


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
        script_id: with_resource_url(script, resource_url)
        for script_id, (_, script, _) in scripts.items()
    }


def with_resource_url(script: Script, resource_url: str) -> Script:
    """``script`` with ``resource_url`` as its deflection link when it names none."""
    if resource_url and not script.resource_url:
        return script.model_copy(update={"resource_url": resource_url})
    return script


def check_dir(
    dir: Path | str, prompts_dir: Path | str | None = None, *, icp: Icp | None = None
) -> list[Problem]:
    """Every problem in the scripts under ``dir`` (empty when all are sound).

    With ``prompts_dir``, each script's ``prompt`` must name a file there. With ``icp``, every
    slot the ICP scores must be asked and every option id it scores must exist.
    """
    return scan_dir(dir, prompts_dir, icp=icp)[1]


def scan_dir(
    dir: Path | str, prompts_dir: Path | str | None = None, *, icp: Icp | None = None
) -> tuple[dict[str, tuple[Path, Script]], list[Problem]]:
    """The sound scripts under ``dir`` by id (with their file) and every problem found, as
    :func:`check_dir` reports them (a script the ICP finds fault with is among both)."""
    scripts, problems = _load_dir(Path(dir), None if prompts_dir is None else Path(prompts_dir))
    if icp is not None:
        for _, script, doc in scripts.values():
            problems.extend(_icp_problems(script, doc, icp))
    return {k: (path, script) for k, (path, script, _) in scripts.items()}, problems


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
        doc = load_yaml(path, expected=EXPECTED)
    except YamlError as exc:
        return None, None, exc.problems
    script, problems = _validate(doc, prompts_dir)
    return script, doc, problems


def _validate(doc: YamlFile, prompts_dir: Path | None) -> tuple[Script | None, list[Problem]]:
    """The script of a parsed document and its problems (all but the ICP's)."""
    problems = list(doc.duplicates)
    try:
        script = Script.model_validate(doc.data, context={DEFER_CHECKS: True})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            problems.append(doc.problem(loc, f"{_dotted(loc)}: {err['msg']}"))
        return None, problems
    for issue in [*script.issues(), *experiment_issues(script)]:
        problems.append(doc.problem(issue.loc, f"{_dotted(issue.loc)}: {issue.message}"))
    if prompts_dir is not None and not (prompts_dir / f"{script.prompt}.yaml").is_file():
        problems.append(
            doc.problem(
                ("prompt",), f"prompt: no prompt file {script.prompt}.yaml in {prompts_dir}"
            )
        )
    return script, problems


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
