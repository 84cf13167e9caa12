"""The stage store's tables (SQLAlchemy 2 declarative).

Every table the pipeline needs lives here so that one Alembic history covers them all:
leads and their audit trail, the conversation (messages, dialog sessions), the durable
inbox and outbox, the touches the scheduler sweeps, and the reps who own leads.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from scheduler.stage_names import Stage as Stage  # noqa: PLC0414 (re-exported: most code imports it here)

# The leads the console's take-over queue is about: asked for a person, or taken by one.
TAKEOVER_PREDICATE = "human_requested_at IS NOT NULL OR taken_by_user_id IS NOT NULL"
# SQLite only auto-increments INTEGER PRIMARY KEY; Postgres gets 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")
# Vendors' ids of messages (WhatsApp wamids, email Message-IDs): stored whole up to this.
MAX_EXTERNAL_ID = 1024
# Outbox keys embed them (a reply is keyed "wa:<inbound wamid>:<n>").
MAX_OUTBOX_KEY = MAX_EXTERNAL_ID + 100


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python, whatever the backend stores.

    SQLite has no time zones; without this, values would come back naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: leadbot stores UTC-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, UTC-aware. Only edges call it; logic takes ``now`` as an argument."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base; ``type_annotation_map`` makes every datetime column UTC-aware."""

    type_annotation_map: dict[Any, Any] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class Rep(Base):
    """A sales rep who owns leads and is notified of qualified leads and booked calls."""

    __tablename__ = "reps"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    whatsapp: Mapped[str | None] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # IANA name; None means LEADBOT_DEFAULT_TIMEZONE. Decides when the daily digest goes.
    timezone: Mapped[str | None] = mapped_column(String(64))


class Lead(Base):
    """A prospect. Unique by normalized email and by E.164 phone; ``stage`` is changed only by
    the stage machine (``scheduler.pipeline.stages``), which bumps ``version`` on every move."""

    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # Short opaque handle used in links we hand out (Calendly utm_content, reply-to tokens).
    token: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    company: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(String(100))
    attribution: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str | None] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(20), default=Stage.NEW.value)
    lost_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    owner_rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    qualification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    enrichment: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    opted_out_at: Mapped[datetime | None]
    bot_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    booked_at: Mapped[datetime | None]
    last_inbound_at: Mapped[datetime | None]
    last_outbound_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_leads_stage_id", "stage", "id"),
        # The board's "mine" and owner filters page one owner's column by id.
        Index("ix_leads_owner_stage_id", "owner_rep_id", "stage", "id"),
        # The console's Today page (new leads, first touch, conversion) and the board's
        # date filter read leads by creation time.
        Index("ix_leads_created_at", "created_at"),
        # The take-over queue (and its live stream's poll): the few leads in a take-over.
        Index(
            "ix_leads_takeover",
            "id",
            postgresql_where=text(TAKEOVER_PREDICATE),
            sqlite_where=text(TAKEOVER_PREDICATE),
        ),
    )

    # -- WhatsApp inbound --
    # When Meta reported 131047 (24-hour window closed) for a message to this lead; cleared
    # when they write again. Free-form messages are pointless until then: templates only.
    whatsapp_window_closed_at: Mapped[datetime | None]
    # Email: why we no longer email this lead ("unsubscribe", "bounced: 550 5.1.1 …").
    email_status: Mapped[str | None] = mapped_column(String(200))
    # Erasure: when the person's data was removed (``scheduler.store.erasure``); the row stays as
    # the anonymous holder of its stage history.
    erased_at: Mapped[datetime | None]

    # -- the console's live take-over --
    # When the prospect last asked for a person (the bot paused itself); cleared when a rep
    # hands the conversation back. Waiting for a human = this is set and nobody has taken it.
    human_requested_at: Mapped[datetime | None]
    # The console user who has the conversation (the bot stays quiet), and since when. Taken
    # with one conditional UPDATE, so two reps never both own one conversation.
    taken_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    taken_at: Mapped[datetime | None]


class StageEvent(Base):
    """The audit trail: one row per stage move that applied (and one for creation)."""

    __tablename__ = "stage_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    from_stage: Mapped[str | None] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    """One message of a lead's conversation, either direction, any channel."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(3))  # "in" | "out"
    external_id: Mapped[str | None] = mapped_column(String(MAX_EXTERNAL_ID), unique=True)
    body: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_messages_lead_created", "lead_id", "created_at"),)


class DialogSessionRow(Base):
    """The dialog engine's session for a lead, stored as JSON with its script id and version."""

    __tablename__ = "dialog_sessions"

    lead_id: Mapped[int] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    script_id: Mapped[str] = mapped_column(String(100))
    script_version: Mapped[str] = mapped_column(String(50))
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The A/B experiment and variant of the conversation, copied from ``state`` when it is
    # saved: columns so the experiments report groups by an index instead of parsing JSON.
    experiment: Mapped[str | None] = mapped_column(String(100))
    variant: Mapped[str | None] = mapped_column(String(50))

    __table_args__ = (
        Index(
            "ix_dialog_sessions_experiment",
            "script_id",
            "experiment",
            "variant",
            "lead_id",
            postgresql_where=text("experiment IS NOT NULL"),
            sqlite_where=text("experiment IS NOT NULL"),
        ),
    )


class InboxItem(Base):
    """A received message, stored before the webhook answers 200 (at-least-once in,
    exactly-once handling: ``external_id`` is UNIQUE, ``processed_at`` marks it done)."""

    __tablename__ = "inbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(MAX_EXTERNAL_ID))
    sender: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_inbox_channel_external_id"),
        Index(
            "ix_inbox_unprocessed",
            "received_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )


class OutboxState(StrEnum):
    """Lifecycle of one outbound intent. ``uncertain`` is never resent automatically."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


class OutboxItem(Base):
    """One outbound message intent, keyed deterministically (e.g. ``lead:42:touch:day3``) so
    the same intent can never be sent twice."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_OUTBOX_KEY), unique=True)
    # Indexed: a lead's page and its erasure find its rows by it.
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(20), default=OutboxState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    external_id: Mapped[str | None] = mapped_column(String(MAX_EXTERNAL_ID), index=True)
    delivery_status: Mapped[str | None] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_outbox_state_next", "state", "next_attempt_at"),)

    # -- attempt tracking --
    # The claim that picked the row (fences the attempt-start write) and when the row's own
    # request was about to leave: after a crash, a ``sending`` row without it never went out.
    claim_token: Mapped[str | None] = mapped_column(String(36))
    sending_started_at: Mapped[datetime | None]


class Touch(Base):
    """One step of a follow-up sequence for one lead: a row, not a scheduler job.

    The sweeper claims due ``pending`` rows with a single UPDATE … RETURNING, so several
    scheduler processes can share the table without sending a touch twice.
    """

    __tablename__ = "touches"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    sequence: Mapped[str] = mapped_column(String(50))
    step: Mapped[str] = mapped_column(String(50))
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    channel: Mapped[str] = mapped_column(String(20))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    needs_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_at: Mapped[datetime | None]
    approved_by: Mapped[str | None] = mapped_column(String(100))
    claim_token: Mapped[str | None] = mapped_column(String(36))
    claimed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    draft: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    # How the draft was made (template or prompt id and version, model), kept with it.
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("lead_id", "sequence", "step", "cycle", name="uq_touches_step"),
        Index(
            "ix_touches_due_pending",
            "due_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index("ix_touches_lead_status", "lead_id", "status"),
    )

    # -- follow-up timing --
    # When the touch's message was handed to the outbox (the dormant job counts from it).
    sent_at: Mapped[datetime | None]


class Suppression(Base):
    """An address (email or phone) we must never message again: opt-outs, hard bounces,
    complaints. Checked before every send."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(String(50))  # unsubscribe, bounce, complaint, stop
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Booking(Base):
    """A call booked through Calendly, keyed by the invitee URI Calendly gives it."""

    __tablename__ = "bookings"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL"), index=True
    )
    invitee_uri: Mapped[str] = mapped_column(String(500), unique=True)
    event_uri: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))  # active | canceled
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    canceled_at: Mapped[datetime | None]


class ProcessedEvent(Base):
    """Webhook deliveries already handled (Calendly, email providers), so that a vendor's
    retries change nothing. ``key`` is the vendor's own id of the event."""

    __tablename__ = "processed_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("source", "key", name="uq_processed_events"),)


class ParkedStatus(Base):
    """A delivery status that arrived before the send it is about was recorded (Meta can
    report ``sent``/``delivered`` before our outbox row has its wamid). Kept for a while
    and applied when the wamid is written (:mod:`scheduler.store.parked_statuses`)."""

    __tablename__ = "parked_statuses"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(MAX_EXTERNAL_ID))
    status: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime] = mapped_column(index=True)

    __table_args__ = (
        UniqueConstraint("channel", "external_id", "status", name="uq_parked_statuses"),
    )


# Email: the daily cap and the per-domain throttle count recently sent email rows.
Index(
    "ix_outbox_channel_state_updated",
    OutboxItem.channel,
    OutboxItem.state,
    OutboxItem.updated_at,
)


# Follow-up timing: the reaper's stale claims, the approval queue, the dormant job's scan.
Index(
    "ix_touches_claimed",
    Touch.claimed_at,
    postgresql_where=text("status = 'claimed'"),
    sqlite_where=text("status = 'claimed'"),
)
Index(
    "ix_touches_awaiting_approval",
    Touch.id,
    postgresql_where=text("status = 'awaiting_approval'"),
    sqlite_where=text("status = 'awaiting_approval'"),
)
Index(
    "ix_touches_sent_step",
    Touch.sequence,
    Touch.step,
    Touch.sent_at,
    postgresql_where=text("status = 'sent'"),
    sqlite_where=text("status = 'sent'"),
)


# -- identity: one person, one lead (scheduler.pipeline.identity) --
class ContactPoint(Base):
    """One way to reach a person, owned by exactly one lead: ``kind`` is ``email``,
    ``phone`` (E.164), ``whatsapp`` (the ``+wa_id`` Meta sends) or ``bsuid``; ``value`` is
    normalized and unique per kind. ``leads.email`` / ``leads.phone`` stay the primary ones."""

    __tablename__ = "contact_points"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("kind", "value", name="uq_contact_points_kind_value"),)


class IdentityEvent(Base):
    """The identity audit trail: a contact point added to a lead, or a conflict recorded."""

    __tablename__ = "identity_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(30))  # contact_point_added | conflict
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdentityConflict(Base):
    """A contact point that two leads claim, left for a human: ``lead_id`` is the lead the
    intake chose, ``other_lead_id`` the one that owns the point (a shared switchboard phone,
    or one person who became two leads)."""

    __tablename__ = "identity_conflicts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    other_lead_id: Mapped[int] = mapped_column(
        ForeignKey("leads.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | resolved
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # The same conflict seen again (a re-import, every turn) is recorded once.
    __table_args__ = (
        UniqueConstraint(
            "lead_id", "other_lead_id", "kind", "value", name="uq_identity_conflicts"
        ),
    )


class User(Base):
    """A person who signs in to the console: an ``admin``, or a ``rep`` linked to the rep
    who owns leads. ``email`` is stored normalized (lower case); ``password_hash`` is an
    argon2id PHC string. ``failed_logins`` counts wrong passwords since the last success;
    reaching the limit sets ``locked_until``."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(10))
    rep_id: Mapped[int | None] = mapped_column(ForeignKey("reps.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsoleSession(Base):
    """A server-side console session. ``id`` is the SHA-256 of the random token the browser
    holds (a stolen database copy does not yield live cookies); ``csrf_token`` is what forms
    must echo. A session ends when revoked or idle past the configured timeout."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    csrf_token: Mapped[str] = mapped_column(String(64))
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LeadNote(Base):
    """A note on a lead's timeline: written by a console user (``kind`` "note"), or
    extracted from an email (``kind`` "email", with the structured fields in ``data``)."""

    __tablename__ = "lead_notes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20), default="note")
    author: Mapped[str] = mapped_column(String(320))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScriptVersion(Base):
    """A dialog script published from the console: its YAML ``source`` as the admin wrote
    it, under a ``version`` unique per script. New conversations start on the newest
    version of their script; a running one keeps the version it started with."""

    __tablename__ = "script_versions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    script_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(50))
    source: Mapped[str] = mapped_column(Text)
    published_by: Mapped[str] = mapped_column(String(320))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("script_id", "version", name="uq_script_versions"),)


# -- HubSpot sync (crm_sync.hubspot) ---------------------------------------------------------


class HubSpotLink(Base):
    """The HubSpot contact and deal a lead is mirrored to, learned from the upserts (the
    inbound webhook finds the lead of a deal here)."""

    __tablename__ = "hubspot_links"

    lead_id: Mapped[int] = mapped_column(
        Id, ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[str | None] = mapped_column(String(40))
    deal_id: Mapped[str | None] = mapped_column(String(40), unique=True)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class HubSpotNote(Base):
    """One note we push to HubSpot, by its deterministic ``note_key`` per lead: marked
    ``started_at`` before its create request, ``hubspot_id`` once HubSpot answered, so a retry
    after an unknown outcome reconciles instead of creating a twin."""

    __tablename__ = "hubspot_notes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    note_key: Mapped[str] = mapped_column(String(120))
    hubspot_id: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("lead_id", "note_key", name="uq_hubspot_notes"),)
