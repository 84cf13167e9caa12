"""The token bucket and the throttling pause, on a fake clock (no real waiting)."""

from __future__ import annotations

import pytest

from bot.channels.throttle import Pause, RateLimited, TokenBucket


class FakeTime:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_burst_passes_then_callers_wait_for_their_slot() -> None:
    time = FakeTime()
    bucket = TokenBucket(2, clock=time.clock, sleep=time.sleep)

    for _ in range(4):
        await bucket.acquire()

    assert time.slept == [0.5, 0.5]  # two free, then one slot every 1/rate seconds


async def test_the_rate_holds_over_time() -> None:
    time = FakeTime()
    bucket = TokenBucket(80, clock=time.clock, sleep=time.sleep)

    for _ in range(800):
        await bucket.acquire()

    assert time.now == pytest.approx((800 - 80) / 80)


async def test_a_wait_past_the_limit_is_refused_and_takes_no_slot() -> None:
    time = FakeTime()
    bucket = TokenBucket(1, burst=1, max_wait=0.5, clock=time.clock, sleep=time.sleep)
    await bucket.acquire()

    with pytest.raises(RateLimited) as caught:
        await bucket.acquire()

    assert caught.value.wait == pytest.approx(1.0)
    time.now += 1.0
    await bucket.acquire()  # the refused call did not use up the next slot
    assert time.slept == []


def test_the_pause_doubles_while_throttling_lasts_and_resets_after() -> None:
    time = FakeTime()
    pause = Pause(initial=1, maximum=5, clock=time.clock)

    assert [pause.trip() for _ in range(4)] == [1, 2, 4, 5]
    assert pause.remaining() == 5
    time.now += 5
    assert pause.remaining() == 0
    pause.reset()
    assert pause.trip(at_least=3) == 3


def test_requests_in_flight_when_a_pause_began_do_not_double_it() -> None:
    """Several sends were on their way when the first 429 came back: their 429s belong to the
    same throttling and do not escalate the pause (1, 2, 4, 8 … for one burst); a 429 for a
    request sent after that pause does."""
    time = FakeTime()
    pause = Pause(initial=1, maximum=60, clock=time.clock)
    in_flight = pause.episode  # eight requests leave together

    lengths = [pause.trip(sent_in=in_flight) for _ in range(8)]

    assert lengths[0] == 1 and max(lengths) == 1
    assert pause.remaining() == 1
    time.now += 1
    assert pause.trip(sent_in=pause.episode) == 2  # sent after the pause: throttling goes on
