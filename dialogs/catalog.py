"""Every version of every dialog script a process knows, and which one a conversation gets.

Scripts come from two places: the files in ``LEADBOT_DIALOGS_DIR`` (read at start) and the
versions admins publish in the console (stored rows). A new conversation starts on
:meth:`ScriptCatalog.current`: the newest version published for its script, else the
file's. A running conversation continues on :meth:`ScriptCatalog.get`: the exact version it
started with, so publishing never changes a conversation under a prospect's feet (the
current version stands in, with a warning logged, only when that version is gone).

Pure: the catalog is handed its contents (:meth:`ScriptCatalog.replace`); reading the files
and the store is the bot's (``bot.script_catalog``). A replace swaps one immutable snapshot,
so a turn in progress sees the old contents or the new, never a mix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from dialogs.script import Script

log = logging.getLogger("leadbot.scripts")

Origin = Literal["file", "console"]


@dataclass(frozen=True, slots=True)
class ScriptVersionEntry:
    """One version of one script: the script, the YAML it was read from, and where that
    came from (a file, or a console publication with who and when)."""

    script: Script
    source: str
    origin: Origin
    file: str | None = None
    published_by: str | None = None
    published_at: datetime | None = None

    @property
    def script_id(self) -> str:
        """The script's id."""
        return self.script.id

    @property
    def version(self) -> str:
        """The script's version."""
        return self.script.version


@dataclass(frozen=True, slots=True)
class _Snapshot:
    versions: Mapping[str, Mapping[str, ScriptVersionEntry]]  # id -> version -> entry
    current: Mapping[str, ScriptVersionEntry]
    families: Mapping[str, Mapping[str, Script]]  # family -> language -> current script


def _snapshot(
    files: Iterable[ScriptVersionEntry], published: Iterable[ScriptVersionEntry]
) -> _Snapshot:
    versions: dict[str, dict[str, ScriptVersionEntry]] = {}
    current: dict[str, ScriptVersionEntry] = {}
    for entry in files:
        versions.setdefault(entry.script_id, {})[entry.version] = entry
        current[entry.script_id] = entry
    # Published entries come oldest first: the last one of a script is its current version.
    for entry in published:
        mine = versions.setdefault(entry.script_id, {})
        clash = mine.get(entry.version)
        if clash is not None and clash.origin == "file":
            # Publishing refuses a file's version; a later deploy can still bring one.
            log.warning(
                "scripts: %s version %r is both a file (%s) and published; the published "
                "text is used",
                entry.script_id,
                entry.version,
                clash.file,
            )
        mine[entry.version] = entry
        current[entry.script_id] = entry
    return _Snapshot(
        MappingProxyType({k: MappingProxyType(v) for k, v in versions.items()}),
        MappingProxyType(current),
        _families(current.values()),
    )


def _families(current: Iterable[ScriptVersionEntry]) -> Mapping[str, Mapping[str, Script]]:
    """Family -> language -> script, over the current versions. Two scripts of one family in
    one language: the smaller id wins (logged), so the choice does not depend on load order."""
    out: dict[str, dict[str, Script]] = {}
    for entry in sorted(current, key=lambda e: e.script_id):
        script = entry.script
        if script.family is None:
            continue
        mine = out.setdefault(script.family, {})
        taken = mine.get(script.language)
        if taken is not None:
            log.warning(
                "scripts: %s and %s are both family %r in %r; %s is used",
                taken.id,
                script.id,
                script.family,
                script.language,
                taken.id,
            )
            continue
        mine[script.language] = script
    return MappingProxyType({k: MappingProxyType(v) for k, v in out.items()})


class ScriptCatalog:
    """The scripts conversations run on, every version of each, by id."""

    def __init__(
        self,
        files: Iterable[ScriptVersionEntry] = (),
        published: Iterable[ScriptVersionEntry] = (),
    ) -> None:
        self._now = _snapshot(files, published)

    def replace(
        self, files: Iterable[ScriptVersionEntry], published: Iterable[ScriptVersionEntry]
    ) -> None:
        """Make the catalog hold ``files`` and ``published`` (oldest first) instead."""
        self._now = _snapshot(files, published)

    def __contains__(self, script_id: object) -> bool:
        return script_id in self._now.current

    def ids(self) -> list[str]:
        """Every script id, sorted."""
        return sorted(self._now.current)

    def current(self, script_id: str) -> Script:
        """The version new conversations of ``script_id`` start on (KeyError if unknown)."""
        return self._now.current[script_id].script

    def current_entry(self, script_id: str) -> ScriptVersionEntry | None:
        """The current version's entry, None for an unknown script."""
        return self._now.current.get(script_id)

    def entry(self, script_id: str, version: str) -> ScriptVersionEntry | None:
        """Exactly ``version`` of ``script_id``, None when the catalog does not have it."""
        return self._now.versions.get(script_id, {}).get(version)

    def get(self, script_id: str, version: str) -> Script | None:
        """The version a running conversation started on; the current version (logged)
        when that one is gone; None when the script itself is gone."""
        found = self.entry(script_id, version)
        if found is not None:
            return found.script
        fallback = self._now.current.get(script_id)
        if fallback is None:
            return None
        log.warning(
            "scripts: %s version %r is gone; the conversation continues on %r",
            script_id,
            version,
            fallback.version,
        )
        return fallback.script

    def entries(self, script_id: str) -> list[ScriptVersionEntry]:
        """Every version of ``script_id``: the file's first, then the published ones oldest
        first."""
        found = self._now.versions.get(script_id, {}).values()
        return sorted(found, key=lambda e: (e.origin == "console", _published_key(e)))

    def scripts(self) -> dict[str, Script]:
        """The current version of every script, by id."""
        return {k: e.script for k, e in self._now.current.items()}

    def languages(self, script: Script) -> frozenset[str]:
        """The languages ``script``'s family is written in (just its own without a family)."""
        if script.family is None:
            return frozenset((script.language,))
        return frozenset(self._now.families.get(script.family, {})) | {script.language}

    def variant(self, script: Script, language: str) -> Script | None:
        """The current script of ``script``'s family written in ``language``: ``script``
        itself when it already is, None when the family has no such translation."""
        if script.language == language:
            return script
        if script.family is None:
            return None
        return self._now.families.get(script.family, {}).get(language)


def _published_key(entry: ScriptVersionEntry) -> float:
    return 0.0 if entry.published_at is None else entry.published_at.timestamp()
