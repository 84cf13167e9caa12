"""A/B experiments on a script's texts: which variant a prospect gets, and its script.

A script may declare ``experiment: {id, variants: {a: {weight}, b: {weight, overrides}}}``.
A new conversation is assigned a variant by a stable hash of the experiment id and the
prospect's key (:func:`assign`: SHA-256, so the same prospect gets the same variant on every
worker, after every restart, whatever the Python hash seed), split by the weights; the session
records it (:attr:`Session.experiment`, :attr:`Session.variant`) and every later turn runs
the same variant (:func:`resume`), so a conversation never changes texts halfway.

A variant changes texts only, by dotted path (``overrides``)::

    greeting                              any top-level text (finished, cta_title, ...)
    questions.<slot>.text | reask         a question, found by its slot
    questions.<slot>.options.<id>.title   an option, found by its id
    outcomes.<kind>.message               an outcome
    faq.<id>.answer                       an FAQ entry, found by its id

Slots, options, scoring and ids stay the script's: the arms ask for the same facts, so their
outcomes compare. Each variant is checked at load time as a whole script (a button title too
long in variant b is a ``file:line: reason`` like any other, :func:`experiment_issues`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from dialogs.errors import FileFormatError
from dialogs.script import DEFER_CHECKS, Experiment, Script, ScriptIssue
from dialogs.session import Session

# Fields a variant may not change: they say which script this is and what it asks.
_FIXED = frozenset(
    {"id", "version", "language", "prompt", "experiment", "quiet_sequence", "when_undecided"}
)
# Items of these lists are found by this key in a path.
_KEYS = {"questions": "slot", "options": "id", "faq": "id"}
_VARIANT_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,49}$")
_CACHE_MAX = 512

# (id(script), variant) -> (script, its variant): a turn does not re-validate its script.
# The script is kept with its entry so an id is never reused while the entry lives.
_variants: dict[tuple[int, str], tuple[Script, Script]] = {}


class OverrideError(FileFormatError, ValueError):
    """An override path that names no text of the script."""


def assign(experiment: Experiment, key: str) -> str:
    """The variant of ``experiment`` for the prospect known by ``key``, split by weight.

    The first 8 bytes of SHA-256(``<experiment id>:<key>``) pick a point in the total
    weight; variants own consecutive ranges in their declared order. Stable across
    processes and restarts; a weight of 0 stops a variant getting new conversations.
    """
    total = sum(v.weight for v in experiment.variants.values())
    if total <= 0:
        raise ValueError(f"experiment {experiment.id!r}: the weights add up to 0")
    digest = hashlib.sha256(f"{experiment.id}:{key}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for name, variant in experiment.variants.items():
        if point < variant.weight:
            return name
        point -= variant.weight
    raise AssertionError("unreachable: point < total")  # pragma: no cover


def start(
    script: Script, key: str, now: datetime, *, name: str | None = None
) -> tuple[Script, Session]:
    """A new conversation with ``script`` for the prospect known by ``key``: the script it
    runs (its assigned variant's, when the script has an experiment) and the session."""
    session = Session.new(script, now, name=name)
    experiment = script.experiment
    if experiment is None:
        return script, session
    variant = assign(experiment, key)
    session = session.model_copy(update={"experiment": experiment.id, "variant": variant})
    return variant_script(script, variant), session


def resume(script: Script, session: Session) -> Script:
    """The script a running conversation continues on: ``script`` with the session's
    variant applied, when the script still runs that experiment and has that variant."""
    experiment = script.experiment
    if (
        session.variant is None
        or experiment is None
        or experiment.id != session.experiment
        or session.variant not in experiment.variants
    ):
        return script
    return variant_script(script, session.variant)


def variant_script(script: Script, variant: str) -> Script:
    """``script`` with the overrides of ``variant`` applied (validated, cached)."""
    key = (id(script), variant)
    hit = _variants.get(key)
    if hit is not None and hit[0] is script:
        return hit[1]
    if script.experiment is None or variant not in script.experiment.variants:
        raise KeyError(f"script {script.id!r} has no variant {variant!r}")
    overrides = script.experiment.variants[variant].overrides
    result = Script.model_validate(apply_overrides(script.model_dump(), overrides))
    if len(_variants) >= _CACHE_MAX:
        _variants.clear()  # a few scripts x variants in practice; bounded anyway
    _variants[key] = (script, result)
    return result


def apply_overrides(data: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    """``data`` (a dumped script) with each override's text set; :class:`OverrideError`
    for a path that names no text field. ``data`` is changed in place and returned."""
    for path, text in overrides.items():
        _set(data, path, text)
    return data


def _set(data: dict[str, Any], path: str, text: str) -> None:
    parts = path.split(".")
    if parts[0] in _FIXED:
        raise OverrideError(f"{parts[0]!r} cannot vary: a variant changes texts only")
    node: dict[str, Any] = data
    i = 0
    while i < len(parts) - 1:
        part = parts[i]
        child = node.get(part)
        if isinstance(child, list):
            # The next part names an item of the list by its key (a slot, an id).
            if i + 2 >= len(parts):
                raise OverrideError(f"{path!r}: name an item of {part!r} and one of its texts")
            key = _KEYS.get(part, "id")
            found = next(
                (x for x in child if isinstance(x, dict) and x.get(key) == parts[i + 1]), None
            )
            if found is None:
                raise OverrideError(f"{path!r}: no item of {part!r} with {key} {parts[i + 1]!r}")
            node, i = found, i + 2
        elif isinstance(child, dict):
            node, i = child, i + 1
        else:
            raise OverrideError(f"{path!r}: {part!r} is not a section of the script")
    last = parts[-1]
    if last not in node:
        raise OverrideError(f"{path!r}: {last!r} is not a field there")
    if last in ("id", "slot", "kind") or (
        node[last] is not None and not isinstance(node[last], str)
    ):
        raise OverrideError(f"{path!r}: {last!r} is not a text a variant can change")
    node[last] = text


def experiment_issues(script: Script) -> list[ScriptIssue]:
    """Every problem of ``script``'s experiment, located under ``experiment``: names, weights,
    override paths, and each variant's script checked as a whole."""
    experiment = script.experiment
    if experiment is None:
        return []
    loc: tuple[str | int, ...] = ("experiment", "variants")
    out: list[ScriptIssue] = []
    if len(experiment.variants) < 2:
        out.append(ScriptIssue(loc, "an experiment needs at least 2 variants"))
    if sum(v.weight for v in experiment.variants.values()) <= 0:
        out.append(ScriptIssue(loc, "the variants' weights add up to 0"))
    base = script.model_dump()
    for name, variant in experiment.variants.items():
        vloc = (*loc, name)
        if not _VARIANT_NAME.fullmatch(name):
            out.append(
                ScriptIssue(vloc, f"variant name {name!r}: use a-z, 0-9, _ and -, up to 50")
            )
        data = _copy(base)
        for path, text in variant.overrides.items():
            try:
                _set(data, path, text)
            except OverrideError as exc:
                out.append(ScriptIssue((*vloc, "overrides", path), str(exc)))
        data["experiment"] = None  # its own checks are these; no recursion
        found: list[tuple[tuple[str | int, ...], str]]
        try:
            variant_issues = Script.model_validate(data, context={DEFER_CHECKS: True}).issues()
        except ValidationError as exc:
            found = [(tuple(err["loc"]), str(err["msg"])) for err in exc.errors()]
        else:
            found = [(issue.loc, issue.message) for issue in variant_issues]
        for where, message in found:
            # At the override that caused it when there is one (a title made too long).
            path = _named_path(data, where)
            at = (*vloc, "overrides", path) if path in variant.overrides else vloc
            out.append(ScriptIssue(at, f"variant {name!r}: {path}: {message}"))
    return out


def _named_path(data: Any, loc: tuple[str | int, ...]) -> str:
    """``loc`` (list items by index) as an override path (list items by slot or id):
    ``questions.0.options.1.title`` -> ``questions.need.options.build.title``."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            key = _KEYS.get(parts[-1] if parts else "", "id")
            parts.append(str(node.get(key, part)) if isinstance(node, dict) else str(part))
            continue
        node = node.get(part) if isinstance(node, dict) else None
        parts.append(str(part))
    return ".".join(parts)


def _copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_copy(v) for v in data]
    return data


def controls(scripts: Iterable[Script]) -> dict[str, str]:
    """Each running experiment's control arm: the first variant its script declares."""
    return {
        s.experiment.id: next(iter(s.experiment.variants))
        for s in scripts
        if s.experiment is not None and s.experiment.variants
    }
