"""The event endpoints the settings describe, checked once at startup.

One endpoint from ``LEADBOT_EVENTS_WEBHOOK_URL`` / ``_SECRET`` / ``_EVENTS`` (named
``default``), more from ``LEADBOT_EVENTS_WEBHOOKS``, a JSON list of
``{"name", "url", "secret", "events"}``. Every mistake is named at startup (a secret that is
not ``whsec_``, an unknown event kind, a duplicate name), not at the first event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from bot.channels.subscribers import event_subscribers
from bot.settings import Settings, SettingsError
from crm_sync.signing import SecretError, check_secret
from scheduler.pipeline import outbound_events
from scheduler.pipeline.outbound_events import Endpoint, EventKind

DEFAULT_NAME = "default"
_KINDS = frozenset(k.value for k in EventKind)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
MAX_URL = 320  # outbox_items.recipient


class EventsConfigError(SettingsError):
    """The event endpoint settings are invalid; the message says which and why."""


def configure_events(settings: Settings) -> tuple[Endpoint, ...]:
    """Tell the emit points which endpoints want which events, and which other consumers
    (:mod:`bot.channels.subscribers`) take them (every process that changes leads: the
    service, ``leadbot leads import``); the endpoints."""
    endpoints = event_endpoints(
        settings.events_webhook_url,
        settings.events_webhook_secret.get_secret_value(),
        settings.events_webhook_events,
        settings.events_webhooks.get_secret_value(),
    )
    outbound_events.configure(endpoints)
    outbound_events.subscribe(event_subscribers(settings))
    return endpoints


def event_endpoints(
    url: str, secret: str, events: str = "", more: str = ""
) -> tuple[Endpoint, ...]:
    """The endpoints of the four settings (empty ones: none)."""
    found: list[Endpoint] = []
    if url or secret:
        kinds = [k.strip() for k in events.split(",") if k.strip()]
        main = {"name": DEFAULT_NAME, "url": url, "secret": secret, "events": kinds}
        found.append(_endpoint(main, "LEADBOT_EVENTS_WEBHOOK_URL/_SECRET/_EVENTS"))
    if more.strip():
        try:
            items = json.loads(more)
        except ValueError as exc:
            raise EventsConfigError(f"LEADBOT_EVENTS_WEBHOOKS is not JSON: {exc}") from exc
        if not isinstance(items, list):
            raise EventsConfigError("LEADBOT_EVENTS_WEBHOOKS must be a JSON list of endpoints")
        found.extend(_endpoint(item, "LEADBOT_EVENTS_WEBHOOKS") for item in items)
    names = [e.name for e in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EventsConfigError(f"event endpoint names must be unique: {', '.join(duplicates)}")
    return tuple(found)


def _endpoint(item: Any, setting: str) -> Endpoint:
    if not isinstance(item, Mapping):
        raise EventsConfigError(f"{setting}: an endpoint is an object (name, url, secret, events)")
    name, url, secret = item.get("name"), item.get("url"), item.get("secret")
    where = f"{setting}: endpoint {name!r}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise EventsConfigError(f"{where}: name must be 1-40 of a-z, 0-9, _ and -")
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+", url) or len(url) > MAX_URL:
        raise EventsConfigError(f"{where}: url must be an http(s) URL of <= {MAX_URL} characters")
    try:
        check_secret(secret if isinstance(secret, str) else "")
    except SecretError as exc:
        raise EventsConfigError(f"{where}: {exc}") from exc
    kinds = item.get("events") or []
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise EventsConfigError(f"{where}: events must be a list of event kinds")
    unknown = sorted(set(kinds) - _KINDS)
    if unknown:
        known = ", ".join(sorted(_KINDS))
        raise EventsConfigError(f"{where}: unknown event kinds {unknown}; known: {known}")
    assert isinstance(secret, str)
    return Endpoint(name=name, url=url, secret=secret, events=frozenset(kinds))
