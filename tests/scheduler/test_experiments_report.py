"""The A/B experiments report (issue 16, item 6): counts per variant from the store, on
every backend, and the two-proportion z-test against a hand-computed example."""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from scheduler.pipeline.experiments import build_reports, experiments_report, two_proportion_test
from scheduler.store.experiments import ArmCounts, arm_counts
from tests.support.experiments import Arm, add_booking, seed_arms


def hand_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """z and the two-sided p-value, written out from the textbook formula (NormalDist's
    CDF, not erfc: an independent computation)."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return z, 2 * (1 - NormalDist().cdf(abs(z)))


def test_the_z_test_matches_the_hand_computed_example() -> None:
    # control 20/200 = 10 %, variant 36/200 = 18 %: pooled 0.14,
    # se = sqrt(0.14 * 0.86 * 2/200) = 0.034699, z = 0.08 / 0.034699 = 2.3055, p = 0.0211
    test = two_proportion_test(20, 200, 36, 200)
    z, p = hand_z(20, 200, 36, 200)
    assert test.z == pytest.approx(z, rel=1e-9) == pytest.approx(2.3055, abs=1e-4)
    assert test.p_value == pytest.approx(p, rel=1e-6) == pytest.approx(0.0211, abs=1e-4)
    assert test.significant and not test.too_small
    # Same rates both ways: sign flips, p stays.
    back = two_proportion_test(36, 200, 20, 200)
    assert back.z == pytest.approx(-z) and back.p_value == pytest.approx(test.p_value)


def test_a_small_difference_is_not_significant() -> None:
    test = two_proportion_test(20, 200, 24, 200)
    z, p = hand_z(20, 200, 24, 200)
    assert test.p_value == pytest.approx(p, rel=1e-6) and p > 0.05
    assert not test.significant


def test_too_little_data_is_flagged_and_no_difference_is_p_one() -> None:
    assert two_proportion_test(1, 10, 6, 10).too_small  # under 30 per arm
    assert two_proportion_test(1, 100, 2, 100).too_small  # 3 bookings: under 5 expected
    same = two_proportion_test(0, 50, 0, 50)
    assert (same.z, same.p_value, same.significant) == (0.0, 1.0, False)
    empty = two_proportion_test(0, 0, 3, 40)
    assert empty.too_small and empty.p_value == 1.0


def test_the_control_comes_first_and_each_variant_is_tested_against_it() -> None:
    arms = [
        ArmCounts("s", "e", "a", 200, 60, 20),
        ArmCounts("s", "e", "b", 200, 70, 36),
        ArmCounts("s", "e", "c", 200, 50, 20),
    ]
    (report,) = build_reports(arms, {"e": "b"})
    assert [a.counts.variant for a in report.arms] == ["b", "a", "c"]
    assert report.arms[0].control and report.arms[0].booking_test is None
    a = report.arms[1]
    assert a.booking_test is not None and a.booking_test.z == pytest.approx(
        hand_z(36, 200, 20, 200)[0]
    )
    assert a.qualified_test is not None and a.qualified_test.p_value == pytest.approx(
        hand_z(70, 200, 60, 200)[1]
    )
    assert a.booking_rate == 0.1 and a.qualified_rate == 0.3
    (by_name,) = build_reports(arms)  # no control named: the first by name
    assert by_name.arms[0].counts.variant == "a"


async def test_the_store_counts_each_arm_once_per_lead(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    control = await seed_arms(sessions, [Arm("control", 200, 60, 20)])
    await seed_arms(sessions, [Arm("short", 200, 70, 36)])
    # Not counted: a canceled booking, a second booking of a booked lead, a conversation
    # in no experiment, another script's experiment (counted apart).
    await add_booking(sessions, control[-1], status="canceled", uri="https://c/x1")
    await add_booking(sessions, control[0], status="active", uri="https://c/x2")
    await seed_arms(sessions, [Arm("none", 40, 40, 40)], experiment=None)
    await seed_arms(sessions, [Arm("a", 5, 1, 1)], script_id="b2b_es", experiment="es-1")

    async with sessions() as db:
        found = await arm_counts(db)
        only = await arm_counts(db, "b2b_default")
        reports = await experiments_report(db, "b2b_default", {"greeting-test-1": "control"})
    assert found == [
        ArmCounts("b2b_default", "greeting-test-1", "control", 200, 60, 20),
        ArmCounts("b2b_default", "greeting-test-1", "short", 200, 70, 36),
        ArmCounts("b2b_es", "es-1", "a", 5, 1, 1),
    ]
    assert only == found[:2]
    (report,) = reports
    short = report.arms[1]
    z, p = hand_z(20, 200, 36, 200)
    assert short.booking_test is not None
    assert short.booking_test.z == pytest.approx(
        z
    ) and short.booking_test.p_value == pytest.approx(p)
    assert report.to_json()["arms"][1]["booking_test"]["significant"] is True
    assert not report.too_small


async def test_an_empty_store_has_no_experiments(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions() as db:
        assert await experiments_report(db) == []
