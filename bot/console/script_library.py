"""What the scripts page lists: every dialog script with its versions and whether each is
sound, and the follow-up cadences (read-only).

Versions come from the script files (checked on disk as ``leadbot dialogs check`` does: the
prompt files and the ICP's slots and options included) and from the versions published in
the console (stored rows, each checked the same way). Which one new conversations get is
the answer of the service's script catalog (:mod:`bot.script_catalog`), not a guess here.
Cadences are checked as ``leadbot cadence check`` does; the console does not edit them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from bot.settings import Settings
from dialogs.catalog import ScriptCatalog
from dialogs.icp import Icp, IcpError, load_icp
from dialogs.loader import check_script_text, scan_dir
from dialogs.yaml_source import Problem
from scheduler.followups.cadence import CadenceError, format_offset, load_cadence
from scheduler.store.models import ScriptVersion


@dataclass(slots=True)
class VersionView:
    """One version of a script as the page shows it."""

    version: str
    origin: Literal["file", "console"]
    problems: list[Problem]
    file: str | None = None
    published_by: str | None = None
    published_at: datetime | None = None
    current: bool = False


@dataclass(slots=True)
class ScriptView:
    """A script and its versions: the file's first, then the published ones oldest first."""

    script_id: str
    versions: list[VersionView] = field(default_factory=list)

    @property
    def current(self) -> VersionView | None:
        """The version new conversations start on."""
        return next((v for v in self.versions if v.current), None)


@dataclass(slots=True)
class CadenceView:
    """A cadence file: its version and steps, or its problems."""

    file: str
    in_use: bool
    version: str = ""
    steps: list[tuple[str, str, str, str]] = field(default_factory=list)  # seq, step, at, ch.
    problems: list[Problem] = field(default_factory=list)


@dataclass(slots=True)
class Library:
    """Everything the scripts page lists."""

    scripts: list[ScriptView]
    broken_files: dict[str, list[Problem]]  # script files too broken to tell their id
    icp_problems: list[str]
    cadences: list[CadenceView]


def checking_icp(settings: Settings) -> tuple[Icp | None, list[str]]:
    """The ICP scripts are checked against, or None and why it cannot be read."""
    try:
        return load_icp(settings.icp_file), []
    except IcpError as exc:
        return None, str(exc).splitlines()


def build_library(
    settings: Settings, rows: Iterable[ScriptVersion], catalog: ScriptCatalog
) -> Library:
    """The page's contents: files on disk, ``rows`` (every published version) and what
    ``catalog`` (the running service) makes current."""
    icp, icp_problems = checking_icp(settings)
    found, problems = scan_dir(settings.dialogs_dir, settings.prompts_dir, icp=icp)
    by_file: dict[str, list[Problem]] = {}
    for problem in problems:
        by_file.setdefault(problem.file, []).append(problem)
    views: dict[str, ScriptView] = {}
    for script_id, (path, script) in found.items():
        views[script_id] = ScriptView(
            script_id,
            [VersionView(script.version, "file", by_file.pop(str(path), []), file=str(path))],
        )
    for row in rows:
        view = views.setdefault(row.script_id, ScriptView(row.script_id))
        view.versions.append(
            VersionView(
                row.version,
                "console",
                published_problems(row, settings, icp),
                published_by=row.published_by,
                published_at=row.published_at,
            )
        )
    for script_id in catalog.ids():
        views.setdefault(script_id, ScriptView(script_id))  # a file changed since start
    for view in views.values():
        running = catalog.current_entry(view.script_id)
        for version in view.versions:
            version.current = running is not None and (
                (version.version, version.origin) == (running.version, running.origin)
            )
    return Library([views[k] for k in sorted(views)], by_file, icp_problems, cadences(settings))


def published_problems(row: ScriptVersion, settings: Settings, icp: Icp | None) -> list[Problem]:
    """A stored version checked again (a prompt file or the ICP may have changed since)."""
    name = f"{row.script_id} {row.version}"
    script, problems = check_script_text(
        row.source, name, prompts_dir=settings.prompts_dir, icp=icp
    )
    if script is not None and (script.id, script.version) != (row.script_id, row.version):
        problems.append(Problem(name, None, f"the text says {script.id} {script.version}"))
    return problems


def cadences(settings: Settings) -> list[CadenceView]:
    """Every cadence file beside ``LEADBOT_CADENCE_FILE`` (that one is in use)."""
    in_use = Path(settings.cadence_file)
    folder = in_use.parent
    files = sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))
    if in_use not in files:
        files.insert(0, in_use)
    views: list[CadenceView] = []
    for path in files:
        view = CadenceView(str(path), path == in_use)
        try:
            cadence = load_cadence(path, default_timezone=settings.default_timezone)
        except CadenceError as exc:
            view.problems = list(exc.problems)
        else:
            view.version = cadence.version
            view.steps = [
                (name, step.id, format_offset(step.offset), step.channel)
                for name, sequence in cadence.sequences.items()
                for step in sequence.steps
            ]
        views.append(view)
    return views
