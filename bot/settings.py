"""Service configuration: every ``LEADBOT_*`` variable, read once in the entry point.

Library code never reads the environment; the CLI builds one :class:`Settings` and passes
the parts each component needs. A ``.env`` file in the working directory is read too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.redact import redact_url
from dialogs.errors import ConfigError
from dialogs.llm_model import OPENAI, ModelConfigError, parse_model
from scheduler.store.retention import MIN_RETENTION_DAYS
from scheduler.store.sqlite_files import database_file
from scheduler.store.urls import NotAUrl, driver_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_DB_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")


class SettingsError(ConfigError):
    """The configuration is invalid; the message names every offending variable."""


class Settings(BaseSettings):
    """All of leadbot's configuration. Empty values mean "not configured"."""

    model_config = SettingsConfigDict(
        env_prefix="LEADBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = "sqlite+aiosqlite:///./leadbot.db"
    redis_url: str = ""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    public_url: str = ""
    secret_key: SecretStr = SecretStr("")
    api_token: SecretStr = SecretStr("")
    # Where phone numbers without a country code are assumed to be (ISO 3166 alpha-2).
    default_region: str = "US"
    default_timezone: str = "UTC"
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576

    whatsapp_phone_id: str = ""
    whatsapp_token: SecretStr = SecretStr("")
    whatsapp_app_secret: SecretStr = SecretStr("")
    whatsapp_verify_token: SecretStr = SecretStr("")
    whatsapp_api_url: str = "https://graph.facebook.com"
    whatsapp_number: str = ""

    smtp_url: SecretStr = SecretStr("")
    email_from: str = ""

    llm_model: str = ""
    # The OpenAI SDK's own variable names, without our prefix, so one .env serves both.
    openai_api_key: SecretStr = Field(
        default=SecretStr(""), validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key")
    )
    openai_base_url: str = Field(
        default="", validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url")
    )

    calendly_url: str = ""
    calendly_signing_key: SecretStr = SecretStr("")

    # Signed outbound events (Standard Webhooks) for n8n, Zapier, Make: one endpoint here
    # (secret: whsec_ + base64), more in events_webhooks.
    events_webhook_url: str = ""
    events_webhook_secret: SecretStr = SecretStr("")
    # The event kinds LEADBOT_EVENTS_WEBHOOK_URL gets, comma-separated; empty: all of them.
    events_webhook_events: str = ""
    # More endpoints: a JSON list of {"name", "url", "secret", "events": [kinds]}.
    events_webhooks: SecretStr = SecretStr("")
    # Seconds an endpoint has to answer a delivery; past it the delivery is tried again.
    events_webhook_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0

    # Who the prospect hears from. Empty: neutral wording ("our team", no personal name).
    # A cadence file's own `sender` block and a dialog script's own `resource_url` win.
    company_name: str = ""
    sender_name: str = ""
    # The lines that close every follow-up email; empty: "<sender>, <company>" from the two
    # above (or "The team"). In .env, write line breaks as \n inside double quotes.
    email_signature: str = ""
    # The guide a prospect who is not a fit is pointed to; empty: the deflection has no link.
    resource_url: str = ""

    dialogs_dir: Path = PROJECT_ROOT / "dialogs" / "scripts"
    prompts_dir: Path = PROJECT_ROOT / "prompts"
    cadence_file: Path = PROJECT_ROOT / "scheduler" / "followups" / "cadences" / "default.yaml"
    icp_file: Path = PROJECT_ROOT / "dialogs" / "icp" / "default.yaml"
    # Form webhooks (POST /webhooks/forms/{source}): presets, field mappings and secrets per
    # source (bot.http.form_config); without it every source uses the defaults.
    forms_file: Path | None = None

    @field_validator("forms_file", mode="before")
    @classmethod
    def _empty_forms_file(cls, value: object) -> object:
        # An empty LEADBOT_FORMS_FILE= means "no file", as for every other empty setting.
        return None if value == "" else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            driver = driver_name(value)
        except NotAUrl:
            raise ValueError(f"not a database URL: {redact_url(value)!r}") from None
        if driver not in SUPPORTED_DB_DRIVERS:
            raise ValueError(
                f"driver {driver!r} is not supported; use one of "
                + ", ".join(f"{d}://…" for d in SUPPORTED_DB_DRIVERS)
            )
        return value

    @field_validator("email_signature")
    @classmethod
    def _signature_lines(cls, value: str) -> str:
        # One-line environments (a shell export, a compose file) spell line breaks as \n.
        return value.replace("\\n", "\n")

    @field_validator("default_region")
    @classmethod
    def _check_default_region(cls, value: str) -> str:
        import phonenumbers  # only when settings are read: not on `leadbot --help`

        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(
                f"{value!r} is not a region phone numbers are known for; use an ISO 3166 "
                "two-letter code such as US, GB, DE, MX"
            )
        return region

    @field_validator("default_timezone")
    @classmethod
    def _check_default_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone; use an IANA name such as UTC, "
                "America/New_York, Europe/Berlin"
            ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"expected redis://host:port/db, got {redact_url(value)!r}")
        return value

    @property
    def is_sqlite(self) -> bool:
        """True when the stage store is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite database file, or None for Postgres or an in-memory database."""
        if not self.is_sqlite:
            return None
        return database_file(self.database_url)

    @property
    def llm_enabled(self) -> bool:
        """A model is configured, with its key for an OpenAI(-compatible) model. A missing
        key, package or a bad provider is refused at start: :func:`bot.interpreters.check_llm`."""
        if not self.llm_model:
            return False
        try:
            openai = parse_model(self.llm_model).provider == OPENAI
        except ModelConfigError:
            return True  # building it raises the one-line error at start
        return bool(self.llm_key) or not openai

    @property
    def llm_key(self) -> str:
        """The key for LEADBOT_LLM_MODEL's provider: OPENAI_API_KEY for OpenAI models, else
        LEADBOT_LLM_API_KEY or the provider's own variable (ANTHROPIC_API_KEY, ...)."""
        try:
            spec = parse_model(self.llm_model)
        except ModelConfigError:
            return ""
        if spec.provider == OPENAI:
            return self.openai_api_key.get_secret_value()
        if own := self.llm_api_key.get_secret_value():
            return own
        # Read here, the one module that reads the environment, and passed down.
        return os.environ.get(spec.key_variable, "") if spec.key_variable else ""

    # -- WhatsApp inbound (webhook, inbox processor) --
    # Messages from one person arriving within this many milliseconds are one turn.
    burst_window_ms: Annotated[int, Field(ge=0, le=10_000)] = 400
    # The dialog script new WhatsApp conversations start with (an id in LEADBOT_DIALOGS_DIR).
    whatsapp_script: str = "b2b_default"
    # How often a failing inbox message is retried before it is given up (error kept on it).
    inbox_max_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    # Redis per-lead locks: the lease (seconds) a holder renews while its turn runs; a worker
    # that dies frees its conversations within one lease.
    lock_lease_seconds: Annotated[float, Field(ge=1, le=300)] = 10.0
    # At most this many Redis connections per process; past it, commands wait for a free one.
    redis_max_connections: Annotated[int, Field(ge=1, le=10_000)] = 50

    # Email
    # At most this many emails leave the sending mailbox per UTC day (cold outreach: keep low).
    email_daily_cap: Annotated[int, Field(ge=1)] = 200
    # At most this many emails per minute to one recipient domain (e.g. acme.com).
    email_domain_per_minute: Annotated[int, Field(ge=1)] = 10
    # Seconds for connecting to and each command of the SMTP server.
    smtp_timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    # Mailgun's HTTP webhook signing key: verifies form posts to /webhooks/email.
    mailgun_signing_key: SecretStr = SecretStr("")
    # Bearer token for JSON posts to /webhooks/email; LEADBOT_API_TOKEN is accepted too.
    email_webhook_token: SecretStr = SecretStr("")

    # WhatsApp sending, Calendly, reps
    # Approved template sent instead of a free-form message outside the 24-hour window.
    whatsapp_template: str = ""
    whatsapp_template_language: str = "en_US"
    # Messages per second sent from our number (Meta's default throughput is 80).
    whatsapp_rate: Annotated[float, Field(gt=0, le=1000)] = 80.0
    # Seconds to wait for the Graph API; past it a message's outcome is unknown (uncertain).
    whatsapp_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0
    # Approved template reps get on WhatsApp ({{1}} what happened, {{2}} lead, {{3}} summary).
    rep_template: str = ""
    rep_template_language: str = "en_US"

    # -- Follow-up timing (touches sweeper) --
    # How often due touches are swept (seconds); a few seconds keeps T+0 replies prompt.
    sweep_seconds: Annotated[float, Field(gt=0, le=3600)] = 5.0
    # Touches claimed per statement; with LEADBOT_SWEEP_MAX_BATCHES it caps sends per sweep.
    sweep_batch: Annotated[int, Field(ge=1, le=10_000)] = 200
    sweep_max_batches: Annotated[int, Field(ge=1, le=1000)] = 10
    # A claim older than this (seconds) is considered abandoned and returned to pending.
    touch_lease_seconds: Annotated[int, Field(ge=10)] = 300
    # Claims a touch may lose (crashed sweepers) before it is marked failed.
    touch_max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    # How often leads are moved to dormant / dormant leads get their reactivation (seconds).
    dormant_check_seconds: Annotated[float, Field(gt=0)] = 3600.0
    reactivation_check_seconds: Annotated[float, Field(gt=0)] = 21600.0
    # How often every live lead is checked for a next step (a touch, a conversation, or
    # dormancy counting down); leads without one are logged, counted and repaired (seconds).
    next_step_check_seconds: Annotated[float, Field(gt=0)] = 900.0

    # Email fast first touch
    # New email leads from POST /api/leads get the T+0 first reply (off: intake only).
    first_touch: bool = True
    # Cold email leads: "ignore" (no touch) or "nurture" (the cadence's nurture sequence).
    cold_leads: Literal["ignore", "nurture"] = "ignore"
    # Also give leads from `leadbot leads import` the first touch (picked up by the safety job).
    import_first_touch: bool = False
    # A paid enrichment API (GET <url>?email=&domain=&name=, bearer token); empty: offline only.
    enrichment_url: str = ""
    enrichment_token: SecretStr = SecretStr("")
    enrichment_timeout: Annotated[float, Field(gt=0, le=60)] = 5.0
    # How often the safety job looks for new email leads the request's task missed (seconds).
    first_touch_check_seconds: Annotated[float, Field(gt=0)] = 30.0

    # Email sending throughput (SMTP connection pool)
    # At most this many SMTP connections (logged in, reused from email to email) at a time.
    smtp_connections: Annotated[int, Field(ge=1, le=50)] = 4
    # Seconds idle SMTP connections stay open for the next emails (0: close after each burst).
    smtp_keepalive: Annotated[float, Field(ge=0, le=600)] = 10.0

    # Console
    # Minutes a console session may sit unused before it ends and the user signs in again.
    console_idle_minutes: Annotated[int, Field(ge=5, le=10_080)] = 120

    # Retention and erasure
    # Days processed inbox rows, processed webhook events and sent outbox payloads are kept
    # for dedupe; at least 8 (Meta re-delivers webhooks for up to 7 days).
    retention_days: int = 90

    @field_validator("retention_days")
    @classmethod
    def _check_retention_days(cls, value: int) -> int:
        if value < MIN_RETENTION_DAYS:
            raise ValueError(
                f"{value} days is too short: dedupe must outlive the vendors' webhook retries "
                f"(Meta: up to 7 days); use at least {MIN_RETENTION_DAYS}"
            )
        return value

    # Notes from emails (issue 15, item 2)
    # Read each inbound email reply into a structured note on the lead (the model when
    # LEADBOT_LLM_MODEL is set, the extractive reading otherwise).
    email_notes: bool = True
    # Seconds the model may take on one reply before the extractive note is kept.
    email_notes_timeout: Annotated[float, Field(gt=0, le=120)] = 15.0
    # How often the catch-up job notes recent replies a crash or restart left unread (seconds).
    email_notes_check_seconds: Annotated[float, Field(gt=0)] = 60.0

    # -- The ad loop: Meta's Conversions API for business messaging --
    # Leads from Click-to-WhatsApp ads that qualify, book or are won are reported to this
    # dataset (Events Manager); empty: nothing is reported. Needs the WABA id below.
    meta_dataset_id: str = ""
    # The WhatsApp Business Account id (Meta's entry id in webhooks); sent with every event.
    whatsapp_waba_id: str = ""
    # A token that may post to the dataset; empty: LEADBOT_WHATSAPP_TOKEN (one system user).
    meta_capi_token: SecretStr = SecretStr("")
    meta_capi_url: str = "https://graph.facebook.com"
    meta_capi_version: str = "v25.0"
    # Events Manager's Test Events code: events show there only (for trying the setup out).
    meta_capi_test_event_code: str = ""
    # Seconds Meta has to answer; past it the event's outcome is unknown (uncertain).
    meta_capi_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0

    # -- HubSpot sync (crm_sync.hubspot; README "HubSpot") --------------------------------
    # A private app token or service key (crm.objects.contacts/deals.read+write, owners
    # read); empty: no sync.
    hubspot_token: SecretStr = SecretStr("")
    hubspot_api_url: str = "https://api.hubapi.com"
    # The app's client secret: verifies webhooks (X-HubSpot-Signature-v3); empty: the
    # webhook answers 503.
    hubspot_client_secret: SecretStr = SecretStr("")
    # The deal pipeline's internal id, and our seven stages → its stage ids (JSON object).
    hubspot_pipeline: str = "default"
    hubspot_stage_map: str = ""
    # Requests per 10 seconds before HubSpot's own headers say (Free/Starter: 100).
    hubspot_rate: Annotated[int, Field(ge=1, le=1000)] = 100
    hubspot_timeout: Annotated[float, Field(gt=0, le=120)] = 10.0

    # -- LangChain on any provider (issue 16, item 4) --
    # The key of the provider LEADBOT_LLM_MODEL names ("anthropic:claude-…"); empty: that
    # provider's own variable (ANTHROPIC_API_KEY, ...). OpenAI models use OPENAI_API_KEY.
    llm_api_key: SecretStr = SecretStr("")

    # Dormant reactivation and the daily digest (issue 15)
    # Reactivation drafts started per rep in any 24 hours (the rest wait for the next day).
    reactivation_per_rep_day: Annotated[int, Field(ge=1, le=1000)] = 20
    # Local hour (in the rep's time zone, else LEADBOT_DEFAULT_TIMEZONE) the digest goes out.
    digest_hour: Annotated[int, Field(ge=0, le=23)] = 8
    # Seconds between checks whose rep's digest is due (one email per rep per local day).
    digest_check_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Hours the digest's approve / skip links keep working.
    digest_link_hours: Annotated[int, Field(ge=1, le=720)] = 48
    # Drafts listed in one digest (the rest: "and N more" with a link to the queue).
    digest_max_items: Annotated[int, Field(ge=1, le=500)] = 50


def check_webhook_secrets(settings: Settings) -> None:
    """Raise :class:`SettingsError` (one line) when a real WhatsApp channel is configured
    without the app secret that proves webhooks come from Meta: unsigned bodies would make
    the bot message real people. ``leadbot serve`` refuses to start then."""
    sends = settings.whatsapp_phone_id and settings.whatsapp_token.get_secret_value()
    if sends and not settings.whatsapp_app_secret.get_secret_value():
        raise SettingsError(
            "LEADBOT_WHATSAPP_APP_SECRET is required with LEADBOT_WHATSAPP_TOKEN and "
            "LEADBOT_WHATSAPP_PHONE_ID set (it proves webhooks come from Meta)"
        )


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and ``.env``) once; raise :class:`SettingsError` naming each bad
    variable, e.g. ``LEADBOT_DATABASE_URL: driver 'mysql' is not supported``."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            name = field.upper() if field.startswith("OPENAI") else f"LEADBOT_{field.upper()}"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        # One line, whatever the number of bad variables: the CLI prints errors as one line.
        raise SettingsError("invalid configuration: " + "; ".join(lines)) from None
