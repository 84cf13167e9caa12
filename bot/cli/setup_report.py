"""What the settings add up to: the summary ``serve`` prints, half-configured pieces, and
``LEADBOT_*`` names that are no setting at all.

Pure functions of a :class:`~bot.settings.Settings` (and of variable names): the CLI prints
what they return. :func:`check_setup` raises for a combination the service cannot run with;
:func:`setup_warnings` lists those it runs with, but surely not as meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from bot.cli.errors import database_location
from bot.redact import redact_url
from bot.settings import Settings, SettingsError, check_webhook_secrets

# Variables of this repository's own tooling, not of the service: the test suite's and
# bench.chaos's (they share the prefix, and a developer's shell has them set).
TOOLING_PREFIXES = ("LEADBOT_TEST_", "LEADBOT_CHAOS_")


def whatsapp_is_real(settings: Settings) -> bool:
    """True when WhatsApp goes to the Cloud API (phone id and token set), not the sandbox."""
    return bool(settings.whatsapp_phone_id and settings.whatsapp_token.get_secret_value())


def setup_summary(settings: Settings) -> list[tuple[str, str]]:
    """(piece, what is active) for the database, WhatsApp, email, replies, locks, public URL
    and the console."""
    if settings.is_sqlite:
        database = f"SQLite {database_location(settings.database_url)}"
    else:
        database = f"PostgreSQL {database_location(settings.database_url)}"
    if whatsapp_is_real(settings):
        whatsapp = f"Cloud API, phone id {settings.whatsapp_phone_id}"
    else:
        whatsapp = "sandbox (`leadbot sandbox chat`; no LEADBOT_WHATSAPP_TOKEN/PHONE_ID)"
    smtp = settings.smtp_url.get_secret_value()
    if smtp:
        parts = urlsplit(smtp)
        server = f"{parts.hostname}:{parts.port}" if parts.port else f"{parts.hostname}"
        email = f"SMTP {server}, from {settings.email_from}"
    else:
        email = "stored outbox, nothing sent (no LEADBOT_SMTP_URL)"
    if settings.llm_enabled:
        where = ""
        if settings.openai_base_url and _is_openai(settings.llm_model):
            where = f" at {redact_url(settings.openai_base_url)}"  # OpenAI models only
        replies = f"LLM {settings.llm_model}{where}"
    else:
        replies = "rules interpreter (no LLM)"
    if settings.redis_url:
        locks = f"Redis {redact_url(settings.redis_url)}"
    else:
        locks = "in-process, one process (no LEADBOT_REDIS_URL)"
    return [
        ("database", database),
        ("whatsapp", whatsapp),
        ("email", email),
        ("replies", replies),
        ("locks", locks),
        ("public URL", settings.public_url or "not set"),
        ("console", f"{console_url(settings)} (users: `leadbot users add EMAIL --role admin`)"),
    ]


def _is_openai(model: str) -> bool:
    """Whether ``model`` is served by OPENAI_BASE_URL (a plain name or ``openai:``)."""
    from dialogs.llm_model import OPENAI, ModelConfigError, parse_model

    try:
        return parse_model(model).provider == OPENAI
    except ModelConfigError:
        return False


def console_url(settings: Settings) -> str:
    """Where the console is: under the public URL, else on the address the service binds."""
    base = settings.public_url.rstrip("/") or f"http://{settings.host}:{settings.port}"
    return f"{base}/console/"


def check_setup(settings: Settings) -> None:
    """Raise :class:`SettingsError` (one line) for settings the service cannot start with."""
    check_webhook_secrets(settings)
    from bot.interpreters import check_llm

    check_llm(settings)  # an unknown provider, its package or its key missing
    from bot.channels.events import configure_events

    configure_events(settings)  # the event endpoints: each mistake named now
    smtp = settings.smtp_url.get_secret_value()
    if not smtp:
        return
    if not settings.email_from:
        raise SettingsError(
            "LEADBOT_SMTP_URL is set but LEADBOT_EMAIL_FROM is empty: set the sender, "
            "e.g. LEADBOT_EMAIL_FROM='Sales <sales@yourdomain.com>'"
        )
    from bot.channels.email_message import EmailSender
    from bot.channels.smtp import SmtpConfig

    try:
        SmtpConfig.from_url(smtp)
        EmailSender.parse(settings.email_from)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


def setup_warnings(settings: Settings) -> list[str]:
    """One line per half-configured piece: what is missing and what happens meanwhile."""
    out: list[str] = []
    key = settings.openai_api_key.get_secret_value()
    if (key or settings.openai_base_url) and not settings.llm_model:
        out.append(
            "OPENAI_API_KEY/OPENAI_BASE_URL are set but LEADBOT_LLM_MODEL is empty: replies "
            "use the rules interpreter; set LEADBOT_LLM_MODEL (e.g. gpt-4o-mini)"
        )
    if not settings.public_url:
        out.append(
            "LEADBOT_PUBLIC_URL is not set: links in rep emails are relative (/approve/…, "
            "/api/leads/…) and emails carry no unsubscribe link; set it to the service's "
            "https:// address"
        )
    elif not settings.public_url.startswith("https://"):
        out.append(
            f"LEADBOT_PUBLIC_URL {settings.public_url!r} is not https://: emails carry no "
            "unsubscribe link"
        )
    out.extend(_whatsapp_warnings(settings))
    if settings.email_from and not settings.smtp_url.get_secret_value():
        out.append(
            "LEADBOT_EMAIL_FROM is set but LEADBOT_SMTP_URL is empty: emails stay in the "
            "stored outbox, nothing is sent"
        )
    signing_key = settings.calendly_signing_key.get_secret_value()
    if settings.calendly_url and not signing_key:
        out.append(
            "LEADBOT_CALENDLY_URL is set but LEADBOT_CALENDLY_SIGNING_KEY is empty: "
            "Calendly's webhooks (bookings, cancellations) are refused"
        )
    elif signing_key and not settings.calendly_url:
        out.append(
            "LEADBOT_CALENDLY_SIGNING_KEY is set but LEADBOT_CALENDLY_URL is empty: "
            "qualified prospects get no booking link"
        )
    if settings.enrichment_token.get_secret_value() and not settings.enrichment_url:
        out.append(
            "LEADBOT_ENRICHMENT_TOKEN is set but LEADBOT_ENRICHMENT_URL is empty: only "
            "offline enrichment runs"
        )
    return out


def _whatsapp_warnings(settings: Settings) -> list[str]:
    phone_id = settings.whatsapp_phone_id
    token = settings.whatsapp_token.get_secret_value()
    if bool(phone_id) != bool(token):
        given, missing = (
            ("LEADBOT_WHATSAPP_PHONE_ID", "LEADBOT_WHATSAPP_TOKEN")
            if phone_id
            else ("LEADBOT_WHATSAPP_TOKEN", "LEADBOT_WHATSAPP_PHONE_ID")
        )
        return [f"{given} is set but {missing} is empty: WhatsApp goes to the sandbox"]
    if phone_id and not settings.whatsapp_verify_token.get_secret_value():
        return [
            "LEADBOT_WHATSAPP_VERIFY_TOKEN is empty: Meta's webhook verification "
            "(GET /webhooks/whatsapp) is refused, so the webhook cannot be subscribed"
        ]
    return []


def known_variables() -> set[str]:
    """Every ``LEADBOT_*`` name a setting is read from."""
    return {
        f"LEADBOT_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.validation_alias is None  # OPENAI_* are read without our prefix
    }


def unknown_variables(
    sources: Mapping[str, Iterable[str]], known: set[str] | None = None
) -> list[str]:
    """A warning per ``LEADBOT_*`` name in ``sources`` (where → names) that is no setting,
    with the closest real name when there is one: a typo would otherwise be ignored."""
    known = known_variables() if known is None else known
    out: list[str] = []
    for where, names in sources.items():
        for name in sorted(set(names)):
            upper = name.upper()
            if not upper.startswith("LEADBOT_") or upper in known:
                continue
            if upper.startswith(TOOLING_PREFIXES):
                continue
            close = difflib.get_close_matches(upper, known, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "it is ignored"
            out.append(f"{name} ({where}) is not a leadbot setting: {hint}")
    return out
