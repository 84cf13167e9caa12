"""The other consumers of outbound events the settings turn on (CRM mirror, ad platform).

Each is a :class:`scheduler.pipeline.outbound_events.Subscriber` from :mod:`crm_sync`: it turns
the facts the pipeline emits (a new lead, a stage move, a booking, a note) into outbox rows
of its own channel, in the transaction of the change. Registered by
:func:`bot.channels.events.configure_events`, so every process that changes leads (the
service, ``leadbot leads import``) feeds them.
"""

from __future__ import annotations

from bot.crm.hubspot import hubspot_subscriber
from bot.settings import Settings, SettingsError
from crm_sync.conversions import ConversionsConfig, ConversionsConfigError, ConversionsSubscriber
from scheduler.pipeline.outbound_events import Subscriber


class ConversionsSettingsError(SettingsError):
    """The Conversions API settings are invalid or partial; the message names them."""


def event_subscribers(settings: Settings) -> list[Subscriber]:
    """The subscribers the settings configure (none on the embedded defaults)."""
    subscribers: list[Subscriber] = []
    hubspot = hubspot_subscriber(settings)  # the HubSpot sync (README "HubSpot")
    if hubspot is not None:
        subscribers.append(hubspot)
    conversions = conversions_config(settings)  # the ad loop (README "The ad loop")
    if conversions is not None:
        subscribers.append(ConversionsSubscriber(conversions))
    return subscribers


def conversions_config(settings: Settings) -> ConversionsConfig | None:
    """Meta's Conversions API as the settings describe it; None when no dataset is set.
    Settings of it without a dataset, or a dataset without what it needs, raise
    :class:`ConversionsSettingsError` (at startup, not at the first conversion)."""
    token = settings.meta_capi_token.get_secret_value()
    if not settings.meta_dataset_id:
        stray = [
            name
            for name, value in (
                ("LEADBOT_META_CAPI_TOKEN", token),
                ("LEADBOT_META_CAPI_TEST_EVENT_CODE", settings.meta_capi_test_event_code),
            )
            if value
        ]
        if stray:
            raise ConversionsSettingsError(
                f"{', '.join(stray)} set without LEADBOT_META_DATASET_ID: set the dataset "
                "conversions go to, or unset them"
            )
        return None
    try:
        return ConversionsConfig(
            dataset_id=settings.meta_dataset_id.strip(),
            waba_id=settings.whatsapp_waba_id.strip(),
            # One system user's token usually holds both the messaging and the events
            # permission; a separate one is for datasets owned by another Business.
            token=token or settings.whatsapp_token.get_secret_value(),
            api_url=settings.meta_capi_url.strip(),
            api_version=settings.meta_capi_version.strip(),
            test_event_code=settings.meta_capi_test_event_code.strip(),
        )
    except ConversionsConfigError as exc:
        raise ConversionsSettingsError(str(exc)) from None
