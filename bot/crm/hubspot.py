"""HubSpot from the settings: the sync channel, its subscriber, the checked stage map.

Read once at startup: a stage map that is not usable (``LEADBOT_HUBSPOT_STAGE_MAP``) stops
the service with a one-line :class:`SettingsError` naming what is wrong, not at the first
sync. Without ``LEADBOT_HUBSPOT_TOKEN`` nothing here is used: no rows, no channel.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.settings import Settings, SettingsError
from crm_sync.hubspot.channel import HubSpotChannel
from crm_sync.hubspot.client import HubSpotClient
from crm_sync.hubspot.rate_limit import RateLimiter
from crm_sync.hubspot.stage_map import StageMap, StageMapError, parse_stage_map
from crm_sync.hubspot.subscriber import HubSpotSubscriber
from scheduler.store import Sessions


class HubSpotConfigError(SettingsError):
    """The HubSpot settings are invalid; the message says which and why."""


@dataclass(frozen=True, slots=True)
class HubSpotConfig:
    """The checked HubSpot settings."""

    token: str
    api_url: str
    pipeline: str
    stages: StageMap
    rate: int
    timeout: float


def hubspot_config(settings: Settings) -> HubSpotConfig | None:
    """The HubSpot settings, checked; None when no token is configured."""
    token = settings.hubspot_token.get_secret_value()
    if not token:
        return None
    try:
        stages = parse_stage_map(settings.hubspot_stage_map)
    except StageMapError as exc:
        raise HubSpotConfigError(str(exc)) from None
    if not settings.hubspot_api_url.startswith(("https://", "http://")):
        raise HubSpotConfigError("LEADBOT_HUBSPOT_API_URL must be an http(s) URL")
    if not settings.hubspot_pipeline.strip():
        raise HubSpotConfigError("LEADBOT_HUBSPOT_PIPELINE must name the deal pipeline's id")
    return HubSpotConfig(
        token=token,
        api_url=settings.hubspot_api_url,
        pipeline=settings.hubspot_pipeline.strip(),
        stages=stages,
        rate=settings.hubspot_rate,
        timeout=settings.hubspot_timeout,
    )


def stage_map(settings: Settings) -> StageMap:
    """The checked stage map (the default one when none is set), for the webhook."""
    try:
        return parse_stage_map(settings.hubspot_stage_map)
    except StageMapError as exc:
        raise HubSpotConfigError(str(exc)) from None


def hubspot_channel(config: HubSpotConfig, sessions: Sessions) -> HubSpotChannel:
    """The outbox channel that syncs leads to HubSpot."""
    client = HubSpotClient(
        config.token,
        api_url=config.api_url,
        timeout=config.timeout,
        limiter=RateLimiter(per_interval=config.rate),
    )
    return HubSpotChannel(client, sessions, stages=config.stages, pipeline=config.pipeline)


def hubspot_subscriber(settings: Settings) -> HubSpotSubscriber | None:
    """The events subscriber that stores sync rows, when HubSpot is configured."""
    return HubSpotSubscriber() if hubspot_config(settings) is not None else None
