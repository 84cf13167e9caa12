"""How each form posting to ``POST /webhooks/forms/{source}`` is read and trusted.

``LEADBOT_FORMS_FILE`` names a YAML file with one entry per source (the path's last part)::

    forms:
      typeform-demo:            # POST /webhooks/forms/typeform-demo
        preset: typeform        # typeform | tally | flat (Webflow, HTML forms, Apps Script)
        signing_secret: "…"     # the tool's webhook secret: the body's HMAC is checked
        source: typeform        # the lead's source (default: the path's name)
        fields:                 # the form's field (ref, id, key or label) → ours
          "Work email": email
          "How big is your team?": answers.company_size
          "Anything else?": message
          "Internal id": ignore

Targets are ``name first_name last_name email phone company role timezone message``,
``answers.<question or slot>``, ``attribution.<key>`` and ``ignore``. Fields the mapping
does not name are recognised by type (a Typeform ``email`` answer) or by common names
("Email", "Phone number", "First Name", "Message"); ``utm_*`` and hidden fields become
attribution, anything else an answer keyed by the question's text. A form with neither a
``signing_secret`` nor a ``token`` is authenticated by ``LEADBOT_API_TOKEN`` as a bearer
token. A source not in the file (or no file) gets the defaults: preset detected from the
body, bearer ``LEADBOT_API_TOKEN``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dialogs.errors import LeadbotError
from dialogs.yaml_source import YamlError, load_yaml

SOURCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
PLAIN_TARGETS = frozenset(
    {"name", "first_name", "last_name", "email", "phone", "company", "role", "timezone"}
    | {"message", "ignore"}
)
KEYED_TARGETS = ("answers.", "attribution.")


class Preset(StrEnum):
    """The payload shapes we read."""

    AUTO = "auto"  # decided from the body: Typeform's form_response, Tally's data.fields, flat
    TYPEFORM = "typeform"
    TALLY = "tally"
    FLAT = "flat"  # {"field": "value"} (HTML forms, Apps Script; Webflow's under data)


class FormsConfigError(LeadbotError):
    """The forms file cannot be read or is not valid."""


class FormConfig(BaseModel):
    """One source's preset, credentials and field mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Preset = Preset.AUTO
    signing_secret: str | None = Field(default=None, min_length=8)
    token: str | None = Field(default=None, min_length=16)
    source: str | None = Field(default=None, max_length=100)
    fields: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for field, target in value.items():
            keyed = target.startswith(KEYED_TARGETS) and target.split(".", 1)[1]
            if target not in PLAIN_TARGETS and not keyed:
                raise ValueError(f"{field!r}: unknown target {target!r}")
        return {field.strip().casefold(): target for field, target in value.items()}


class FormsFile(BaseModel):
    """The whole forms file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forms: dict[str, FormConfig] = Field(default_factory=dict)

    @field_validator("forms")
    @classmethod
    def _source_names(cls, value: dict[str, FormConfig]) -> dict[str, FormConfig]:
        for name in value:
            if not SOURCE_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a usable path name (letters, digits, _ . -)")
        return value

    def form(self, source: str) -> FormConfig:
        """The configuration of ``source``; the defaults when it has none."""
        return self.forms.get(source) or FormConfig()


@lru_cache(maxsize=4)
def load_forms(path: Path | None) -> FormsFile:
    """The forms file at ``path`` (an empty configuration for None), read once."""
    if path is None:
        return FormsFile()
    try:  # the one YAML reader: lines in every problem, duplicate keys refused
        doc = load_yaml(path)
        doc.refuse_duplicates()
    except YamlError as exc:
        raise FormsConfigError(f"LEADBOT_FORMS_FILE {exc}") from None
    try:
        return FormsFile.model_validate(doc.data)
    except ValidationError as exc:
        first = exc.errors()[0]
        problem = doc.problem(first["loc"], str(first["msg"]).removeprefix("Value error, "))
        raise FormsConfigError(f"LEADBOT_FORMS_FILE {problem}") from None
