"""Follow-up templates: the Jinja2 sandbox they render in and the variables they see.

Templates live beside the cadence file (``templates/``) and run in Jinja2's sandbox with
``StrictUndefined``, so a misspelt variable fails when the cadence loads
(:func:`template_problem`, called by :func:`scheduler.followups.cadence.load_cadence`) rather
than on a lead's Day 3. The template drafter (:mod:`scheduler.followups.drafting`) renders
them with the same environment and variables. This module knows nothing of the cadence
types, so the cadence loader and the drafters both import it and not each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

SAMPLE_LEAD = {
    "id": 1,
    "name": "Dana Smith",
    "first_name": "Dana",
    "company": "Acme",
    "role": "COO",
    "stage": "contacted",
    "token": "t0k3n",
}
SAMPLE_LINKS = {
    "calendly": "https://calendly.example/x",
    "public": "https://example.com",
    "resource": "https://example.com/guide",
}


@lru_cache(maxsize=16)
def environment(templates_dir: Path) -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment of the templates in ``templates_dir`` (cached)."""
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(templates_dir)),
        autoescape=select_autoescape(["html", "htm", "xml"], default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def template_variables(
    sender: Mapping[str, str],
    lead: dict[str, Any],
    answers: dict[str, Any],
    links: dict[str, str],
    step: Mapping[str, str] | None,
) -> dict[str, Any]:
    """What a template sees: ``lead``, ``answers``, ``links``, ``sender`` (the sender's
    template values for the step's channel) and ``step`` (its ``id`` and ``purpose``)."""
    return {"lead": lead, "answers": answers, "links": links, "sender": sender, "step": step}


def template_problem(
    templates_dir: Path, name: str, *, sender: Mapping[str, str], resources: Mapping[str, str]
) -> str | None:
    """Why template ``name`` cannot be used (missing, bad syntax, unknown variable), or None.

    The template is rendered once with a sample lead, the sender's template values and the
    sample links plus the cadence's ``resources``, so that a misspelt variable fails when the
    cadence loads.
    """
    links = {**SAMPLE_LINKS, **resources}
    try:
        template = environment(templates_dir).get_template(name)
        template.render(template_variables(sender, SAMPLE_LEAD, {}, links, None))
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        return f"template {name!r}: {exc.__class__.__name__}: {exc.message}{where}"
    return None
