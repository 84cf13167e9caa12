"""The ad loop: conversions of leads from Click-to-WhatsApp ads, as outbox rows for Meta.

A lead whose first message came from a Click-to-WhatsApp ad carries the click's id
(``ctwa_clid``, :mod:`scheduler.store.ad_clicks`). When such a lead reaches a milestone, Meta's
Conversions API for business messaging is told, so the ad is credited and its delivery
optimised for people who convert, not for people who only write. The milestones, and the
names Meta accepts for them with ``action_source=business_messaging`` (Meta's "Conversions
API for Business Messaging" guide; ``Lead``, ``Schedule`` and custom names are refused with
subcode 2804066):

- qualified (``lead.qualified``, from any path) → ``LeadSubmitted``;
- booked a call (``meeting.booked``) → ``InitiateCheckout``: ``Schedule`` is refused, and
  this is the accepted name that sits between a lead and a purchase in Meta's funnel;
- won (``lead.stage_changed`` into ``won``) → ``Purchase``.

:class:`ConversionsSubscriber` is a :class:`scheduler.pipeline.outbound_events.Subscriber`:
its rows are stored in the transaction of the change (never lost, never for a change that
rolled back). Each row's key is ``capi:lead:<id>:<event name>``: once per kind per lead,
however often the milestone is reached again (qualified twice, a rescheduled call), and
erasure finds it by ``:lead:<id>:``. Its ``event_id`` is derived from the click and the name,
so Meta dedupes a retry too. Events later than Meta's attribution window (7 days after the
click) are not sent: they would no longer be credited to the ad.

Delivery is :mod:`crm_sync.conversions_channel`'s.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dialogs.errors import ConfigError
from scheduler.pipeline.outbound_events import Event, EventKind
from scheduler.store import Session
from scheduler.store.ad_clicks import AdClick, ad_clicks
from scheduler.store.outbox import outbox_row

CHANNEL = "meta_capi"
"""The outbox channel name of conversion events."""
ACTION_SOURCE = "business_messaging"
MESSAGING_CHANNEL = "whatsapp"
LEAD_SUBMITTED = "LeadSubmitted"
INITIATE_CHECKOUT = "InitiateCheckout"
PURCHASE = "Purchase"
ACCEPTED_NAMES = frozenset(
    {LEAD_SUBMITTED, PURCHASE, "AddToCart", INITIATE_CHECKOUT, "ViewContent"}
)
"""The event names Meta accepts with ``action_source=business_messaging``."""
ATTRIBUTION_WINDOW = timedelta(days=7)
"""Meta credits an ad with events up to this long after its click."""
DEFAULT_API_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"  # the version the wire format was verified on
_ID_NAMESPACE = uuid.UUID("0b7f3c55-2f1e-4a8e-9d6c-3c1e7a5b9f24")
_DIGITS = re.compile(r"^[0-9]{1,30}$")
_VERSION = re.compile(r"^v[0-9]{1,3}\.[0-9]{1,2}$")
_URL = re.compile(r"^https?://[^\s/]+(/[^\s]*)?$")

log = logging.getLogger("leadbot.conversions")


class ConversionsConfigError(ConfigError):
    """The Conversions API settings are invalid or partial; the message says which."""


@dataclass(frozen=True, slots=True)
class ConversionsConfig:
    """Where conversions go: the dataset (Meta's id), the WhatsApp Business Account whose
    conversations they came from, the token, and the Graph API's base URL and version.
    ``test_event_code`` routes events to Events Manager's Test Events tab instead."""

    dataset_id: str
    waba_id: str
    token: str
    api_url: str = DEFAULT_API_URL
    api_version: str = DEFAULT_API_VERSION
    test_event_code: str = ""

    def __post_init__(self) -> None:
        if not _DIGITS.match(self.dataset_id):
            raise ConversionsConfigError(
                f"LEADBOT_META_DATASET_ID must be Meta's numeric dataset id, not "
                f"{self.dataset_id!r}"
            )
        if not _DIGITS.match(self.waba_id):
            raise ConversionsConfigError(
                "LEADBOT_WHATSAPP_WABA_ID (the WhatsApp Business Account id) is required with "
                "LEADBOT_META_DATASET_ID and must be numeric"
            )
        if not self.token:
            raise ConversionsConfigError(
                "LEADBOT_META_DATASET_ID needs a token: LEADBOT_META_CAPI_TOKEN (or "
                "LEADBOT_WHATSAPP_TOKEN, used when it is empty)"
            )
        if not _URL.match(self.api_url):
            raise ConversionsConfigError(
                f"LEADBOT_META_CAPI_URL must be an http(s) URL, not {self.api_url!r}"
            )
        if not _VERSION.match(self.api_version):
            raise ConversionsConfigError(
                f"LEADBOT_META_CAPI_VERSION must look like v25.0, not {self.api_version!r}"
            )

    @property
    def events_url(self) -> str:
        """``POST`` here: ``{graph}/{version}/{dataset id}/events``."""
        return f"{self.api_url.rstrip('/')}/{self.api_version}/{self.dataset_id}/events"


def conversion_name(event: Event) -> str | None:
    """The Meta event name of a milestone ``event``, or None when it is not one."""
    if event.kind is EventKind.LEAD_QUALIFIED:
        return LEAD_SUBMITTED
    if event.kind is EventKind.MEETING_BOOKED:
        return INITIATE_CHECKOUT
    if event.kind is EventKind.LEAD_STAGE_CHANGED and event.data.get("to") == "won":
        return PURCHASE
    return None


def conversion_key(lead_id: int, name: str) -> str:
    """The outbox key of ``lead_id``'s ``name`` conversion (once per kind per lead)."""
    return f"capi:lead:{lead_id}:{name}"


def conversion_event_id(lead_id: int, click: AdClick, name: str) -> str:
    """The stable ``event_id`` Meta dedupes on: the same on every retry, and apart for
    every click (two installations posting to one dataset never share one)."""
    return uuid.uuid5(_ID_NAMESPACE, f"lead:{lead_id}:{click.ctwa_clid}:{name}").hex


def conversion_body(
    name: str, at: datetime, event_id: str, *, waba_id: str, ctwa_clid: str
) -> dict[str, Any]:
    """One element of the request's ``data`` list, in Meta's wire format."""
    return {
        "event_name": name,
        "event_time": int(at.timestamp()),  # seconds, not milliseconds
        "event_id": event_id,
        "action_source": ACTION_SOURCE,
        "messaging_channel": MESSAGING_CHANNEL,
        "user_data": {"whatsapp_business_account_id": waba_id, "ctwa_clid": ctwa_clid},
    }


class ConversionsSubscriber:
    """Turns milestone events of ad leads into conversion rows (see the module's doc)."""

    def __init__(self, config: ConversionsConfig) -> None:
        self.config = config

    async def outbox_rows(self, session: Session, events: Sequence[Event]) -> list[dict[str, Any]]:
        """One row per milestone of a lead with an ad click inside the window, per name."""
        named = [(e, n) for e in events if e.lead_id is not None and (n := conversion_name(e))]
        if not named:
            return []  # most changes: no read at all
        clicks = await ad_clicks(session, [e.lead_id for e, _ in named if e.lead_id])
        rows: dict[str, dict[str, Any]] = {}
        for event, name in named:
            assert event.lead_id is not None
            click = clicks.get(event.lead_id)
            if click is None:
                continue
            if event.occurred_at - click.clicked_at > ATTRIBUTION_WINDOW:
                log.info(
                    "lead %s: %s not sent to Meta, the ad click is older than %s days",
                    event.lead_id,
                    name,
                    ATTRIBUTION_WINDOW.days,
                )
                continue
            key = conversion_key(event.lead_id, name)
            rows.setdefault(key, self._row(key, event, name, click))
        return list(rows.values())

    def _row(self, key: str, event: Event, name: str, click: AdClick) -> dict[str, Any]:
        assert event.lead_id is not None
        body = conversion_body(
            name,
            event.occurred_at,
            conversion_event_id(event.lead_id, click, name),
            waba_id=self.config.waba_id,
            ctwa_clid=click.ctwa_clid,
        )
        return outbox_row(
            key=key,
            channel=CHANNEL,
            recipient=self.config.dataset_id,
            # lead_id stays None: a conversion is not a message in the lead's conversation.
            payload={"event": body, "text": f"{name} for lead {event.lead_id} ({event.fact})"},
            now=event.occurred_at,
        )
