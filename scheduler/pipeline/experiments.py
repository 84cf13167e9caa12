"""The A/B experiments report: each variant's booking and qualified rates, and whether the
difference from the control arm is more than chance.

The test is the two-proportion z-test (pooled): for ``x1`` of ``n1`` and ``x2`` of ``n2``,
``p = (x1 + x2) / (n1 + n2)``, ``se = sqrt(p (1 - p) (1/n1 + 1/n2))``, ``z = (x2/n2 - x1/n1)
/ se`` and the two-sided p-value is ``erfc(|z| / sqrt 2)``. Significant means p < 0.05. The
normal approximation needs enough data: an arm under :data:`MIN_PER_ARM` conversations, or
fewer than 5 expected successes or failures, is flagged ``too_small`` (the numbers are shown,
the verdict is not to be trusted). Each variant is compared with the control alone: with
several variants, one of them will look significant by chance more often than 5% of the time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scheduler.store import Session
from scheduler.store.experiments import ArmCounts, arm_counts

ALPHA = 0.05
MIN_PER_ARM = 30
MIN_EXPECTED = 5  # successes and failures each, under the pooled rate


@dataclass(frozen=True, slots=True)
class ZTest:
    """A two-proportion z-test of a variant against the control."""

    z: float
    p_value: float
    significant: bool
    too_small: bool


def two_proportion_test(x1: int, n1: int, x2: int, n2: int, *, alpha: float = ALPHA) -> ZTest:
    """The pooled two-proportion z-test of ``x2/n2`` against ``x1/n1`` (two-sided).

    Both rates 0% (or both 100%) is no difference at all: z 0, p-value 1. An empty arm is
    ``too_small`` with z 0 and p-value 1.
    """
    if n1 <= 0 or n2 <= 0:
        return ZTest(0.0, 1.0, False, True)
    pooled = (x1 + x2) / (n1 + n2)
    n = n1 + n2
    too_small = (
        min(n1, n2) < MIN_PER_ARM or pooled * n < MIN_EXPECTED or (1 - pooled) * n < MIN_EXPECTED
    )
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return ZTest(0.0, 1.0, False, too_small)
    z = (x2 / n2 - x1 / n1) / se
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return ZTest(z, p_value, p_value < alpha, too_small)


@dataclass(frozen=True, slots=True)
class ArmReport:
    """One variant: its counts and rates, and its tests against the control (None for the
    control itself)."""

    counts: ArmCounts
    control: bool
    booking_test: ZTest | None = None
    qualified_test: ZTest | None = None

    @property
    def booking_rate(self) -> float:
        """Booked / assigned (0 when none assigned)."""
        return _rate(self.counts.booked, self.counts.assigned)

    @property
    def qualified_rate(self) -> float:
        """Qualified / assigned (0 when none assigned)."""
        return _rate(self.counts.qualified, self.counts.assigned)


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    """One experiment of one script, with its arms, the control first."""

    script_id: str
    experiment: str
    arms: list[ArmReport] = field(default_factory=list)

    @property
    def too_small(self) -> bool:
        """Whether any comparison has too little data to be trusted."""
        return any(a.booking_test is not None and a.booking_test.too_small for a in self.arms)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data (``leadbot experiments report --json``)."""
        return {
            "script_id": self.script_id,
            "experiment": self.experiment,
            "too_small": self.too_small,
            "arms": [
                {
                    "variant": a.counts.variant,
                    "control": a.control,
                    "assigned": a.counts.assigned,
                    "qualified": a.counts.qualified,
                    "booked": a.counts.booked,
                    "qualified_rate": a.qualified_rate,
                    "booking_rate": a.booking_rate,
                    "booking_test": _test_json(a.booking_test),
                    "qualified_test": _test_json(a.qualified_test),
                }
                for a in self.arms
            ],
        }


def build_reports(
    arms: Sequence[ArmCounts], controls: Mapping[str, str] | None = None
) -> list[ExperimentReport]:
    """Group counted arms into experiments and test each variant against the control.

    ``controls`` maps an experiment id to its control variant (the first the script
    declares); an experiment not in it takes its first variant by name.
    """
    grouped: dict[tuple[str, str], list[ArmCounts]] = {}
    for arm in arms:
        grouped.setdefault((arm.script_id, arm.experiment), []).append(arm)
    out: list[ExperimentReport] = []
    for (script_id, experiment), unsorted in grouped.items():
        found = sorted(unsorted, key=lambda a: a.variant)
        wanted = (controls or {}).get(experiment)
        control = next((a for a in found if a.variant == wanted), found[0])
        report = ExperimentReport(script_id, experiment, [ArmReport(control, True)])
        for arm in found:
            if arm is control:
                continue
            booking = two_proportion_test(
                control.booked, control.assigned, arm.booked, arm.assigned
            )
            qualified = two_proportion_test(
                control.qualified, control.assigned, arm.qualified, arm.assigned
            )
            report.arms.append(ArmReport(arm, False, booking, qualified))
        out.append(report)
    return out


async def experiments_report(
    session: Session,
    script_id: str | None = None,
    controls: Mapping[str, str] | None = None,
) -> list[ExperimentReport]:
    """Every experiment's report (of ``script_id`` only, when given), read in one query."""
    return build_reports(await arm_counts(session, script_id), controls)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _test_json(test: ZTest | None) -> dict[str, Any] | None:
    if test is None:
        return None
    return {
        "z": test.z,
        "p_value": test.p_value,
        "significant": test.significant,
        "too_small": test.too_small,
    }
