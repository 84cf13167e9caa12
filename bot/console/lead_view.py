"""What the lead page shows, shaped from the stored rows: the qualification with its
evidence and versions, the attribution, and one line per timeline entry.

Pure functions of what the store returned (no I/O), so the templates stay simple and
every stored shape, including old or partial ones, is read in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.console.render import STAGE_LABELS
from scheduler.store.models import (
    Booking,
    LeadNote,
    OutboxItem,
    Stage,
    StageEvent,
    Touch,
)
from scheduler.store.notes import NoteKind
from scheduler.store.timeline import SentMessage, Source, TimelineCursor, TimelineEntry

CHANNEL_LABELS = {"whatsapp": "WhatsApp", "email": "Email", "sandbox": "Sandbox"}
# Badge tone of each status a message, outbox row or touch can show.
TONES = {
    "delivered": "good",
    "read": "good",
    "sent": "good",
    "active": "good",
    "queued": "",
    "pending": "",
    "drafting": "",
    "awaiting approval": "warn",
    "uncertain": "warn",
    "failed": "bad",
    "canceled": "bad",
    "cancelled": "",
    "skipped": "",
}
TOUCH_STATUS = {"claimed": "drafting", "awaiting_approval": "awaiting approval"}
OUTBOX_STATUS = {"pending": "queued", "sending": "queued"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stage_label(stage: str | None) -> str:
    """A stage as people read it ("Proposal sent")."""
    if stage is None:
        return "—"
    try:
        return STAGE_LABELS[Stage(stage)]
    except ValueError:
        return stage


def channel_label(channel: str) -> str:
    """A channel as people read it."""
    return CHANNEL_LABELS.get(channel, channel)


# -- qualification -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """One qualifying answer: the value read, and the prospect's own words it came from."""

    slot: str
    value: str
    evidence: str
    unknown: bool


@dataclass(frozen=True, slots=True)
class QualificationView:
    """A lead's qualification as the page shows it."""

    tier: str
    decision: str
    fit: str
    intent: str
    reasons: list[str]
    missing: list[str]
    disqualifiers: list[str]
    answers: list[Answer]
    versions: list[tuple[str, str]]
    notes: list[str]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _texts(value: Any) -> list[str]:
    return [_text(v) for v in value if v is not None] if isinstance(value, list) else []


def qualification_view(record: Mapping[str, Any] | None) -> QualificationView | None:
    """The stored ``lead.qualification`` (the scorer's verdict, the answers with their
    evidence, and the versions that decided), or None when the lead has none."""
    if not record:
        return None
    slots = record.get("slots")
    answers = [
        Answer(
            slot=str(name),
            value=_text(slot.get("value")),
            evidence=_text(slot.get("evidence")),
            unknown=bool(slot.get("unknown")),
        )
        for name, slot in (slots.items() if isinstance(slots, Mapping) else ())
        if isinstance(slot, Mapping)
    ]
    versions: list[tuple[str, str]] = []
    if record.get("script_id"):
        versions.append(
            ("Script", f"{record['script_id']} v{_text(record.get('script_version')) or '?'}")
        )
    for key, label in (
        ("prompt_version", "Prompt"),
        ("icp_version", "ICP"),
        ("enrichment_version", "Enrichment"),
        ("source", "Read by"),
        ("flow", "Flow"),
    ):
        if record.get(key):
            versions.append((label, _text(record[key])))
    first_touch = record.get("first_touch")
    if isinstance(first_touch, Mapping):
        if first_touch.get("cadence_version"):
            versions.append(("Cadence", _text(first_touch["cadence_version"])))
        if first_touch.get("action"):
            sequence = _text(first_touch.get("sequence"))
            action = _text(first_touch["action"])
            versions.append(("First touch", f"{action} ({sequence})" if sequence else action))
    return QualificationView(
        tier=_text(record.get("tier")),
        decision=_text(record.get("decision")),
        fit=_text(record.get("fit_score")),
        intent=_text(record.get("intent_score")),
        reasons=_texts(record.get("reasons")),
        missing=_texts(record.get("missing")),
        disqualifiers=_texts(record.get("disqualifiers")),
        answers=answers,
        versions=versions,
        notes=_texts(record.get("notes")),
    )


def facts(
    values: Mapping[str, Any] | None, *, skip: tuple[str, ...] = ()
) -> list[tuple[str, str]]:
    """The plain (text, number, yes/no) entries of a stored mapping, as label and text:
    the attribution (utm_source, campaign, …) and the enrichment."""
    if not values:
        return []
    return [
        (str(key).replace("_", " "), _text(value))
        for key, value in values.items()
        if key not in skip and isinstance(value, str | int | float | bool) and value != ""
    ]


def campaign_of(attribution: Mapping[str, Any] | None) -> str:
    """The campaign a lead came from (``campaign``, else ``utm_campaign``), or ""."""
    if not attribution:
        return ""
    return _text(attribution.get("campaign") or attribution.get("utm_campaign"))


# -- the timeline ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One line of the timeline: its kind (the style), when, a title, the text, a status
    badge (with its tone) and a small detail line."""

    kind: str
    at: datetime
    title: str
    body: str = ""
    status: str = ""
    tone: str = ""
    detail: str = ""
    channel: str = ""
    options: list[str] = field(default_factory=list)
    # Labelled facts shown under the body (an email note's next step, budget, …).
    fields: list[tuple[str, str]] = field(default_factory=list)


def _status(status: str) -> tuple[str, str]:
    return status, TONES.get(status, "")


def _payload_options(payload: Mapping[str, Any]) -> list[str]:
    """The buttons or list rows a WhatsApp message offered."""
    found = payload.get("buttons") or payload.get("rows") or []
    return [str(o["title"]) for o in found if isinstance(o, Mapping) and o.get("title")]


def _payload_text(payload: Mapping[str, Any]) -> str:
    text = payload.get("text")
    if text:
        return str(text)
    if payload.get("template"):
        return f"(template {payload['template']})"
    return ""


def _message(sent: SentMessage) -> TimelineItem:
    message = sent.message
    payload = message.payload if isinstance(message.payload, Mapping) else {}
    body = message.body or _payload_text(payload)
    subject = _text(payload.get("subject"))
    channel = channel_label(message.channel)
    if message.direction == "in":
        return TimelineItem(
            kind="message-in",
            at=message.created_at,
            title=f"{channel} from the lead",
            body=body,
            detail=f"Subject: {subject}" if subject else "",
            channel=message.channel,
        )
    status = sent.delivery_status or sent.state or "sent"
    status = OUTBOX_STATUS.get(status, status)
    label, tone = _status(status)
    details = [f"Subject: {subject}"] if subject else []
    if sent.error and status in ("failed", "uncertain"):
        details.append(sent.error)
    return TimelineItem(
        kind="message-out",
        at=message.created_at,
        title=f"{channel} to the lead",
        body=body,
        status=label,
        tone=tone,
        detail=" · ".join(details),
        channel=message.channel,
        options=_payload_options(payload),
    )


def _unsent(item: OutboxItem) -> TimelineItem:
    payload = item.payload if isinstance(item.payload, Mapping) else {}
    status = OUTBOX_STATUS.get(item.state, item.state)
    label, tone = _status(status)
    detail = item.error or ""
    if status == "uncertain":
        detail = detail or "it may or may not have gone out: check before sending again"
    return TimelineItem(
        kind="message-out",
        at=item.created_at,
        title=f"{channel_label(item.channel)} to the lead",
        body=_payload_text(payload),
        status=label,
        tone=tone,
        detail=detail,
        channel=item.channel,
        options=_payload_options(payload),
    )


def _stage_event(event: StageEvent) -> TimelineItem:
    if event.from_stage is None:
        title = f"Created in {stage_label(event.to_stage)}"
    elif event.from_stage == event.to_stage and event.reason == "erased":
        title = "Erased: the person's data was removed"
    else:
        title = f"Stage: {stage_label(event.from_stage)} → {stage_label(event.to_stage)}"
    return TimelineItem(
        kind="stage",
        at=event.at,
        title=title,
        body="" if event.reason == "erased" else _text(event.reason),
        detail=f"by {event.actor}",
    )


def _touch(touch: Touch, now: datetime) -> TimelineItem:
    status = TOUCH_STATUS.get(touch.status, touch.status)
    label, tone = _status(status)
    if touch.sent_at is not None:
        detail = f"sent {_when(touch.sent_at)}"
    elif touch.due_at > now:
        detail = f"due {_when(touch.due_at)}"
    else:
        detail = f"was due {_when(touch.due_at)}"
    extra = [touch.note] if touch.note else []
    if touch.approved_by:
        extra.append(f"approved by {touch.approved_by}")
    # A draft waiting for a person is worth reading here; a sent one shows as its message.
    body = (touch.draft or "") if touch.status == "awaiting_approval" else ""
    return TimelineItem(
        kind="touch",
        at=touch.sent_at or touch.due_at,
        title=f"Follow-up {touch.sequence} · {touch.step}",
        body=body,
        status=label,
        tone=tone,
        detail=" · ".join([detail, *extra]),
        channel=touch.channel,
    )


def _booking(booking: Booking) -> TimelineItem:
    canceled = booking.status == "canceled"
    label, tone = _status(booking.status)
    when = f"call at {_when(booking.start_time)}" if booking.start_time else ""
    if canceled and booking.canceled_at:
        when = f"{when} · canceled {_when(booking.canceled_at)}".strip(" ·")
    return TimelineItem(
        kind="booking",
        at=booking.created_at,
        title="Call canceled" if canceled else "Call booked",
        status=label,
        tone=tone,
        detail=when,
    )


def _note(note: LeadNote) -> TimelineItem:
    if note.kind == NoteKind.NOTE:
        return TimelineItem(
            kind="note", at=note.created_at, title="Note", body=note.body, detail=note.author
        )
    if note.kind == NoteKind.EMAIL:
        return email_note_item(note)
    if note.kind == NoteKind.FORM:
        answers = (note.data or {}).get("answers") or {}
        lines = [note.body, *(f"{q}: {a}" for q, a in answers.items())]
        body = "\n".join(line for line in lines if line)
        return TimelineItem(kind="note", at=note.created_at, title="From a form", body=body)
    return TimelineItem(kind="event", at=note.created_at, title=note.body, detail=note.author)


def _quoted(value: Any) -> str:
    """A stored ``{text, evidence}`` fact as "text — “evidence”"."""
    if not isinstance(value, Mapping):
        return "—"
    text, evidence = _text(value.get("text")), _text(value.get("evidence"))
    if evidence and evidence != text:
        return f"{text} — “{evidence}”" if text else f"“{evidence}”"
    return text or "—"


def email_note_item(note: LeadNote) -> TimelineItem:
    """A note read from an email reply: the summary, then next step, budget, timeline,
    objections and sentiment (each "—" when the reply did not say), and who read it."""
    data = note.data if isinstance(note.data, Mapping) else {}
    objections = [
        f"{_text(o.get('kind'))}: “{_text(o.get('evidence'))}”"
        for o in data.get("objections") or []
        if isinstance(o, Mapping)
    ]
    fields = [
        ("Next step", _text(data.get("next_step")) or "—"),
        ("Budget", _quoted(data.get("budget"))),
        ("Timeline", _quoted(data.get("timeline"))),
        ("Objections", "; ".join(objections) or "none stated"),
        ("Sentiment", _text(data.get("sentiment")) or "not read"),
    ]
    if data.get("source") == "llm":
        reader = f"read by the model ({_text(data.get('prompt_version')) or '?'})"
    else:
        reader = "extractive: first sentences and the rules' facts"
    details = [reader]
    if data.get("subject"):
        details.append(f"Subject: {_text(data['subject'])}")
    if data.get("injection_suspected"):
        details.append("the email tried to instruct the model")
    return TimelineItem(
        kind="note",
        at=note.created_at,
        title="Note from an email",
        body=note.body,
        detail=" · ".join(details),
        fields=fields,
    )


def timeline_item(entry: TimelineEntry, now: datetime) -> TimelineItem:
    """The line of one timeline entry."""
    row = entry.row
    match entry.cursor.source:
        case Source.STAGE_EVENT:
            return _stage_event(row)
        case Source.MESSAGE:
            return _message(row)
        case Source.OUTBOX:
            return _unsent(row)
        case Source.TOUCH:
            return _touch(row, now)
        case Source.BOOKING:
            return _booking(row)
        case _:
            return _note(row)


def _when(value: datetime | None) -> str:
    return "—" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


# -- the "show older" cursor in a URL ----------------------------------------------------


def cursor_param(cursor: TimelineCursor) -> str:
    """A cursor as a query parameter (``<µs since 1970>-<source>-<id>``: exact, URL-safe)."""
    micros = (cursor.at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{int(cursor.source)}-{cursor.id}"


def parse_cursor(text: str) -> TimelineCursor | None:
    """The cursor of :func:`cursor_param`, or None when ``text`` is not one."""
    parts = text.split("-")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    micros, source, row_id = (int(p) for p in parts)
    if source not in {s.value for s in Source} or micros > 10**17 or row_id >= 2**63:
        return None
    return TimelineCursor(_EPOCH + timedelta(microseconds=micros), Source(source), row_id)
