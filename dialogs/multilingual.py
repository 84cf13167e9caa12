"""Run the script in the prospect's language, and follow them when they change language.

A script may name a ``family``: its translations (same slots, same option ids, so the ICP and
the answers given so far mean the same in each). :func:`follow_language` looks at what the
prospect wrote this turn:

- a new conversation starts on the family's script in the language of the first message
  (:func:`dialogs.language.first_language`: little evidence needed, "hola" is enough);
- a running one moves to another translation only on strong evidence
  (:func:`dialogs.language.switch_language`: "ok" or "40" never moves it), keeping every
  slot, the open question, the re-ask counts and the history: only ``script_id`` and
  ``script_version`` change.

Pure: the caller (the WhatsApp processor) hands in the catalog, script, session and text.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dialogs.language import detectable, detector, first_language, switch_language

if TYPE_CHECKING:
    from dialogs.catalog import ScriptCatalog
    from dialogs.script import Script
    from dialogs.session import Session

log = logging.getLogger("leadbot.language")


def follow_language(
    catalog: ScriptCatalog, script: Script, session: Session, text: str, *, new: bool
) -> tuple[Script, Session]:
    """The script and session this turn runs on, given the prospect's ``text``.

    ``new`` says the session was just created for this turn (nothing said yet), so the first
    script may be chosen on little evidence. Without a family, or without text, nothing
    changes and no detector runs."""
    if not text.strip() or script.family is None:
        return script, session
    languages = catalog.languages(script)
    if len(languages) < 2:
        return script, session
    ordered = sorted(languages)
    if new:
        language = first_language(text, ordered)
    else:
        language = switch_language(text, script.language, ordered)
    if language is None or language == script.language:
        return script, session
    target = catalog.variant(script, language)
    if target is None or target.id == script.id:
        return script, session
    if not new:
        log.info(
            "language: conversation moves from %s (%s) to %s (%s)",
            script.id,
            script.language,
            target.id,
            target.language,
        )
    return target, move(session, target)


def move(session: Session, target: Script) -> Session:
    """``session`` continued on ``target`` (a translation of its script): the same slots and
    state; the open question kept when ``target`` asks it (a translation does)."""
    slots = set(target.slots)
    update: dict[str, object] = {"script_id": target.id, "script_version": target.version}
    if session.open_slot is not None and session.open_slot not in slots:
        update["open_slot"] = None  # not a true translation: the engine asks what is next
    return session.model_copy(update=update)


def warm(catalog: ScriptCatalog) -> int:
    """Build the language detector of every family with translations now (it takes seconds:
    better at start, in a thread, than in a prospect's first turn); how many were built."""
    sets = {
        langs
        for script in catalog.scripts().values()
        if len(langs := detectable(catalog.languages(script))) > 1
    }
    for langs in sets:
        detector(langs)
    return len(sets)
