"""Form tools' webhook payloads → the fields of a lead (:class:`~scheduler.pipeline.leads.LeadIn`).

Each preset flattens its vendor's shape into :class:`Item` s (the names a field is known by,
its type when the tool says, its value as text); :func:`lead_fields` then maps items to our
fields through the source's mapping (:mod:`bot.http.form_config`), the item's type, or common
field names. Nothing here trusts the body: the route checked its signature or token first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.http.errors import ApiError
from bot.http.form_config import FormConfig, Preset

MAX_ITEMS = 200  # a form with more fields than this is not a lead form
MAX_KEY_CHARS = 500
MAX_VALUE_CHARS = 2000
MAX_MAP_ENTRIES = 50  # LeadIn's answers and attribution hold this many

# Field names (casefolded, spaces and dashes as underscores) that say what a field is.
COMMON_NAMES = {
    "name": "name",
    "full_name": "name",
    "your_name": "name",
    "first_name": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "email": "email",
    "e_mail": "email",
    "email_address": "email",
    "work_email": "email",
    "your_email": "email",
    "phone": "phone",
    "phone_number": "phone",
    "mobile": "phone",
    "whatsapp": "phone",
    "tel": "phone",
    "company": "company",
    "company_name": "company",
    "organization": "company",
    "organisation": "company",
    "role": "role",
    "job_title": "role",
    "title": "role",
    "timezone": "timezone",
    "time_zone": "timezone",
    "message": "message",
    "comments": "message",
    "comment": "message",
    "inquiry": "message",
    "enquiry": "message",
    "how_can_we_help?": "message",
    "how_can_we_help": "message",
}
# Field types the tools name, which say what a field is whatever its label.
TYPED = {
    "email": "email",
    "phone_number": "phone",
    "input_email": "email",
    "input_phone_number": "phone",
}
ATTRIBUTION_PREFIXES = ("utm_", "gclid", "fbclid", "ref", "campaign")


@dataclass(frozen=True, slots=True)
class Item:
    """One field of a submission: the names it is known by (ref, id, key, label; the first
    is its display name), the tool's type for it, its value as text, and whether it was a
    hidden field (tracking parameters)."""

    names: tuple[str, ...]
    value: str
    kind: str = ""
    hidden: bool = False


def items_of(body: dict[str, Any], preset: Preset) -> list[Item]:
    """The fields of a submission in ``preset`` 's shape (detected for ``auto``); a 400
    :class:`ApiError` when the body is not that shape."""
    if preset is Preset.AUTO:
        if isinstance(body.get("form_response"), dict):
            preset = Preset.TYPEFORM
        elif isinstance(body.get("data"), dict) and isinstance(body["data"].get("fields"), list):
            preset = Preset.TALLY
        else:
            preset = Preset.FLAT
    reader = {Preset.TYPEFORM: _typeform, Preset.TALLY: _tally, Preset.FLAT: _flat}[preset]
    found = reader(body)
    if len(found) > MAX_ITEMS:
        raise ApiError(400, "malformed_form", f"more than {MAX_ITEMS} fields")
    return found


def _shape_error(preset: str, what: str) -> ApiError:
    return ApiError(400, "malformed_form", f"not a {preset} payload: {what}")


def _text(value: Any) -> str:
    """A field value as text: lists joined, booleans as yes/no, objects refused."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value).strip()
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    raise ApiError(400, "malformed_form", "a field value must be text, a number or a list")


def _typeform(body: dict[str, Any]) -> list[Item]:
    response = body.get("form_response")
    if not isinstance(response, dict) or not isinstance(response.get("answers", []), list):
        raise _shape_error("Typeform", "form_response.answers must be a list")
    definition = response.get("definition") or {}
    titles = {
        f.get("id"): f.get("title")
        for f in (definition.get("fields") or [])
        if isinstance(f, dict) and isinstance(f.get("title"), str)
    }
    found: list[Item] = []
    for answer in response.get("answers") or []:
        if not isinstance(answer, dict) or not isinstance(answer.get("field"), dict):
            raise _shape_error("Typeform", "each answer needs a field")
        field, kind = answer["field"], str(answer.get("type", ""))
        value: Any = answer.get(kind)
        if kind == "choice" and isinstance(value, dict):
            value = value.get("label") or value.get("other")
        elif kind == "choices" and isinstance(value, dict):
            value = [*(value.get("labels") or []), value.get("other")]
        names = [titles.get(field.get("id")), field.get("ref"), field.get("id")]
        found.append(Item(_names(names), _text(value), kind))
    hidden = response.get("hidden") or {}
    if not isinstance(hidden, dict):
        raise _shape_error("Typeform", "form_response.hidden must be an object")
    found += [Item((str(k),), _text(v), hidden=True) for k, v in hidden.items()]
    return found


def _tally(body: dict[str, Any]) -> list[Item]:
    data = body.get("data")
    fields = data.get("fields") if isinstance(data, dict) else None
    if not isinstance(fields, list):
        raise _shape_error("Tally", "data.fields must be a list")
    found: list[Item] = []
    for field in fields:
        if not isinstance(field, dict):
            raise _shape_error("Tally", "each field must be an object")
        kind, value = str(field.get("type", "")), field.get("value")
        options = {
            o.get("id"): o.get("text")
            for o in field.get("options") or []
            if isinstance(o, dict) and isinstance(o.get("text"), str)
        }
        if options:  # choices come as option ids
            chosen = value if isinstance(value, list) else [value]
            value = [options.get(v, v) if isinstance(v, str) else v for v in chosen]
        names = [field.get("label"), field.get("key")]
        found.append(Item(_names(names), _text(value), kind.lower(), kind == "HIDDEN_FIELDS"))
    return found


def _flat(body: dict[str, Any]) -> list[Item]:
    # Webflow sends {"payload": {"data": {...}}} (v2) or {"data": {...}} (v1); an HTML form,
    # Apps Script or Zapier step sends the fields themselves.
    fields: Any = body
    payload = body.get("payload")
    if isinstance(payload, dict) and isinstance(payload.get("data"), dict):
        fields = payload["data"]
    elif isinstance(body.get("data"), dict):
        fields = body["data"]
    return [Item((str(k),), _text(v)) for k, v in fields.items()]


def _names(names: list[Any]) -> tuple[str, ...]:
    found = tuple(str(n) for n in names if isinstance(n, str) and n.strip())
    return found or ("field",)


def _common(name: str) -> str | None:
    key = name.strip().casefold().replace(" ", "_").replace("-", "_")
    return COMMON_NAMES.get(key)


def target_of(item: Item, config: FormConfig) -> str:
    """Where ``item`` goes: the mapping's target, else by type, common name, or as
    attribution (hidden and tracking fields) or an answer keyed by its display name."""
    for name in item.names:
        mapped = config.fields.get(name.strip().casefold())
        if mapped:
            return mapped
    if item.kind in TYPED:
        return TYPED[item.kind]
    for name in item.names:
        common = _common(name)
        if common:
            return common
    label = item.names[0][:MAX_KEY_CHARS]
    if item.hidden or label.casefold().startswith(ATTRIBUTION_PREFIXES):
        return f"attribution.{label}"
    return f"answers.{label}"


def lead_fields(items: list[Item], config: FormConfig, source: str) -> dict[str, Any]:
    """The body of a :class:`~scheduler.pipeline.leads.LeadIn` the items describe (the
    first value of a field wins; first and last name joined when there is no name)."""
    out: dict[str, Any] = {"source": config.source or source}
    answers: dict[str, str] = {}
    attribution: dict[str, str] = {}
    parts: dict[str, str] = {}
    for item in items:
        if not item.value:
            continue
        target = target_of(item, config)
        value = item.value[:MAX_VALUE_CHARS]
        if target.startswith("answers.") and len(answers) < MAX_MAP_ENTRIES:
            answers.setdefault(target.removeprefix("answers."), value)
        elif target.startswith("attribution.") and len(attribution) < MAX_MAP_ENTRIES:
            attribution.setdefault(target.removeprefix("attribution."), value[:500])
        elif target in ("first_name", "last_name"):
            parts.setdefault(target, value)
        elif target == "message" and out.get("message"):
            out["message"] = f"{out['message']}\n{value}"[:MAX_VALUE_CHARS]
        elif target != "ignore" and "." not in target:
            out.setdefault(target, value)
    if "name" not in out and parts:
        out["name"] = " ".join(parts[k] for k in ("first_name", "last_name") if k in parts)
    if answers:
        out["answers"] = answers
    if attribution:
        out["attribution"] = attribution
    return out
