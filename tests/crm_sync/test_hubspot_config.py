"""The HubSpot pieces without I/O: the stage map (checked at startup, both ways) and the
rate limiter (learns HubSpot's headers, holds back instead of overrunning a window)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from bot.channels import build_channels
from bot.channels.subscribers import event_subscribers
from bot.crm.hubspot import HubSpotConfigError
from bot.settings import SettingsError
from crm_sync.hubspot.channel import HubSpotChannel
from crm_sync.hubspot.rate_limit import HeldBack, RateLimiter
from crm_sync.hubspot.signature import signed_uri
from crm_sync.hubspot.stage_map import StageMapError, parse_stage_map
from crm_sync.hubspot.subscriber import HubSpotSubscriber
from scheduler.pipeline import outbound_events
from scheduler.store.models import Stage
from tests.bot.support import make_settings


@pytest.fixture(autouse=True)
def _unsubscribe() -> Iterator[None]:
    yield
    outbound_events.subscribe(())  # build_channels registers process-wide: never left over
    outbound_events.configure(())


FULL = (
    '{"new":"a","contacted":"b","qualified":"c","proposal_sent":"d","won":"w",'
    '"lost":"x","dormant":"x"}'
)


def test_the_default_map_is_hubspots_default_pipeline() -> None:
    stages = parse_stage_map("")
    assert stages.hubspot("qualified") == "presentationscheduled"
    assert stages.ours("closedlost") == (Stage.LOST, Stage.DORMANT)  # lost first


def test_a_map_shared_by_two_stages_resolves_in_the_maps_order() -> None:
    stages = parse_stage_map(FULL)
    assert stages.hubspot("dormant") == "x"
    assert stages.ours("x") == (Stage.LOST, Stage.DORMANT)
    assert stages.ours("nope") == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        ('{"new":"a"}', "missing stages ['contacted'"),
        (FULL[:-1] + ',"booked":"z"}', "unknown stages ['booked']"),
        (FULL.replace('"w"', '""'), "stages ['won'] need a HubSpot stage id"),
    ],
)
def test_a_bad_map_is_named(text: str, says: str) -> None:
    with pytest.raises(StageMapError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_stage_map(text)


def test_a_bad_map_stops_the_service_at_startup() -> None:
    settings = make_settings(hubspot_token="pat-na1-x", hubspot_stage_map='{"new":"a"}')
    with pytest.raises(HubSpotConfigError) as error:
        build_channels(settings)
    assert isinstance(error.value, SettingsError)
    assert "LEADBOT_HUBSPOT_STAGE_MAP" in str(error.value)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_the_limiter_learns_the_window_and_holds_back_past_it() -> None:
    clock = Clock()
    limiter = RateLimiter(per_interval=100, max_wait=0.0, clock=clock)
    limiter.observe(
        {
            "X-HubSpot-RateLimit-Max": "3",
            "X-HubSpot-RateLimit-Remaining": "3",
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        }
    )
    for _ in range(3):
        await limiter.acquire()
        limiter.done()
    with pytest.raises(HeldBack) as held:
        await limiter.acquire()
    assert held.value.retry_after == pytest.approx(10.0)
    clock.t += 10.0  # the window rolled on
    await limiter.acquire()


async def test_a_slot_is_timed_when_its_request_ends() -> None:
    clock = Clock()
    limiter = RateLimiter(per_interval=1, interval=10.0, max_wait=0.0, clock=clock)
    await limiter.acquire()
    with pytest.raises(HeldBack):  # in flight: the window is full
        await limiter.acquire()
    clock.t += 3.0  # a slow answer
    limiter.done()
    clock.t += 9.0  # 9 s after it ended: still counted (HubSpot counted it during those 3 s)
    with pytest.raises(HeldBack) as held:
        await limiter.acquire()
    assert held.value.retry_after == pytest.approx(1.0)


async def test_someone_else_spending_the_budget_counts() -> None:
    clock = Clock()
    limiter = RateLimiter(per_interval=10, max_wait=0.0, clock=clock)
    limiter.observe({"X-HubSpot-RateLimit-Max": "10", "X-HubSpot-RateLimit-Remaining": "1"})
    await limiter.acquire()
    limiter.done()
    with pytest.raises(HeldBack):
        await limiter.acquire()


async def test_a_spent_day_holds_back_until_midnight() -> None:
    clock = Clock()
    wall = datetime(2026, 5, 4, 23, 0, tzinfo=UTC)
    limiter = RateLimiter(clock=clock, wall=lambda: wall)
    limiter.observe({"X-HubSpot-RateLimit-Daily-Remaining": "0"})
    with pytest.raises(HeldBack) as held:
        await limiter.acquire()
    assert held.value.retry_after == pytest.approx(3600.0)
    assert limiter.throttled("SECONDLY", None) == 1.0
    assert limiter.throttled("TEN_SECONDLY_ROLLING", 4.0) == 4.0


def test_the_sync_is_wired_only_when_a_token_is_set() -> None:
    assert event_subscribers(make_settings()) == []
    assert "hubspot" not in build_channels(make_settings())

    settings = make_settings(hubspot_token="pat-na1-x")
    [subscriber] = event_subscribers(settings)
    assert isinstance(subscriber, HubSpotSubscriber)
    # The channel reads leads at send time: it needs the store.
    assert "hubspot" not in build_channels(settings)
    assert isinstance(build_channels(settings, cast(Any, object()))["hubspot"], HubSpotChannel)


def test_the_signed_uri_decodes_only_what_hubspot_decodes() -> None:
    raw = "/webhooks/hubspot?t=a%3Ab&u=%2Fx&v=%7E&w=%20"
    assert signed_uri("https://bot.example", raw) == (
        "https://bot.example/webhooks/hubspot?t=a:b&u=/x&v=%7E&w=%20"
    )
