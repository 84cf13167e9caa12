"""Telling reps about their leads: qualified, booked, canceled, handed off, a question.

:func:`notify_reps` runs in the caller's transaction: it makes sure the lead has an owner
(round robin, :mod:`scheduler.store.reps`) and enqueues one outbox row per way of reaching the
owner: WhatsApp as an approved template (reps are outside the 24-hour window: they never
write to the bot) and email. Keys are deterministic, so notifying twice about the same
thing stores nothing new; the caller delivers the returned ids after its commit.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.settings import Settings
from scheduler.delivery.outbox import enqueue
from scheduler.store import Session
from scheduler.store.models import Lead, Rep
from scheduler.store.reps import assign_owner

log = logging.getLogger("leadbot.notify")

KINDS = {
    "qualified": "Qualified lead",
    "booked": "Call booked",
    "canceled": "Call canceled",
    "handoff": "Lead asks for a person",
    "question": "Lead has a question",
    "replied": "Lead replied",
    "approval": "First reply awaits your approval",
}
# Template parameters may not hold new lines, tabs or runs of spaces, and must stay short.
_WHITESPACE = re.compile(r"\s+")
PARAM_MAX = 200


@dataclass(frozen=True, slots=True)
class RepOptions:
    """How reps are reached on WhatsApp: the approved template (empty: email only)."""

    template: str = ""
    language: str = "en_US"
    public_url: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> RepOptions:
        """``LEADBOT_REP_TEMPLATE``, ``LEADBOT_REP_TEMPLATE_LANGUAGE``, ``LEADBOT_PUBLIC_URL``."""
        return cls(settings.rep_template, settings.rep_template_language, settings.public_url)


async def notify_reps(
    session: Session,
    *,
    lead: Lead,
    kind: str,
    summary: str,
    details: Mapping[str, Any],
    now: datetime,
    options: RepOptions | None = None,
) -> list[int]:
    """Enqueue notifications of ``kind`` about ``lead`` to its owner; return new outbox ids.

    ``details`` is what happened (answers, qualification, booking); it is summarized in the
    message and also decides the key, so the same event never notifies twice.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; expected one of {sorted(KINDS)}")
    options = options or RepOptions()
    rep = await assign_owner(session, lead.id, now=now)
    if rep is None:
        log.warning("lead %s: %s, but there is no active rep to tell", lead.id, kind)
        return []
    lead.owner_rep_id = rep.id
    discriminator = _fingerprint(summary, details)
    ids: list[int] = []
    for channel, recipient, payload in _messages(
        rep, lead, kind=kind, summary=summary, details=details, options=options
    ):
        item_id = await enqueue(
            session,
            key=f"rep:{rep.id}:lead:{lead.id}:{kind}:{discriminator}:{channel}",
            channel=channel,
            recipient=recipient,
            payload=payload,
            now=now,
        )
        if item_id is not None:
            ids.append(item_id)
    return ids


def _messages(
    rep: Rep,
    lead: Lead,
    *,
    kind: str,
    summary: str,
    details: Mapping[str, Any],
    options: RepOptions,
) -> list[tuple[str, str, dict[str, Any]]]:
    who = lead_label(lead)
    lines = describe(lead, summary, details, options.public_url)
    messages: list[tuple[str, str, dict[str, Any]]] = []
    if rep.whatsapp and options.template:
        params = [_param(KINDS[kind]), _param(who), _param(summary or "-")]
        messages.append(
            (
                "whatsapp",
                rep.whatsapp,
                {
                    "kind": "template",
                    "text": f"{KINDS[kind]}: {who}. {summary}",
                    "template": options.template,
                    "language": options.language,
                    "params": params,
                },
            )
        )
    if rep.email:
        text = "\n".join(lines)
        body = "".join(f"<p>{html.escape(line)}</p>" if line else "" for line in lines)
        messages.append(
            (
                "email",
                rep.email,
                {"subject": f"[leadbot] {KINDS[kind]}: {who}", "text": text, "html": body},
            )
        )
    if not messages:
        log.warning("rep %s has no way to be reached (no email, no WhatsApp template)", rep.id)
    return messages


def lead_label(lead: Lead) -> str:
    """How a rep recognizes the lead: name and company, else a contact, else the id."""
    name = lead.name or lead.email or lead.phone or f"lead {lead.id}"
    return f"{name} ({lead.company})" if lead.company else name


def describe(lead: Lead, summary: str, details: Mapping[str, Any], public_url: str) -> list[str]:
    """The plain-text body: summary, contacts, the lead's answers, the qualification."""
    lines = [summary, ""]
    for label, value in (
        ("Name", lead.name),
        ("Company", lead.company),
        ("Email", lead.email),
        ("Phone", lead.phone),
        ("Stage", lead.stage),
    ):
        if value:
            lines.append(f"{label}: {value}")
    qualification = details.get("qualification") or lead.qualification or {}
    slots = details.get("slots") or qualification.get("slots") or {}
    if slots:
        lines += ["", "Answers:"]
        lines += [f"- {name}: {_slot_value(slot)}" for name, slot in slots.items()]
    if qualification.get("decision"):
        lines += [
            "",
            f"Decision: {qualification['decision']} (tier {qualification.get('tier')},"
            f" fit {qualification.get('fit_score')}, intent "
            f"{qualification.get('intent_score')})",
        ]
        lines += [f"- {reason}" for reason in qualification.get("reasons", [])]
    extra = {k: v for k, v in details.items() if k not in ("qualification", "slots")}
    if extra:
        lines += ["", *(f"{k}: {v}" for k, v in extra.items() if v not in (None, ""))]
    if public_url:
        lines += ["", f"{public_url.rstrip('/')}/api/leads/{lead.id}"]
    return lines


def _slot_value(slot: Any) -> str:
    if isinstance(slot, Mapping):
        if slot.get("unknown"):
            return "doesn't know"
        value = slot.get("value")
        evidence = slot.get("evidence")
        return (
            f"{value} (“{evidence}”)" if evidence and str(evidence) != str(value) else str(value)
        )
    return str(slot)


def _param(text: str) -> str:
    flat = _WHITESPACE.sub(" ", text).strip() or "-"
    return flat if len(flat) <= PARAM_MAX else flat[: PARAM_MAX - 1] + "…"


def _fingerprint(summary: str, details: Mapping[str, Any]) -> str:
    canonical = json.dumps({"summary": summary, "details": details}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
