"""The cadence file: validation with file:line reasons, and quiet hours in the lead's zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from bot.cli.main import app as cli_app
from scheduler.followups.cadence import (
    BusinessDays,
    CadenceError,
    QuietHours,
    UnknownSequenceError,
    load_cadence,
    parse_offset,
)
from scheduler.followups.timing import next_allowed, zone_for
from tests.scheduler.cadence_support import COMPRESSED, write_cadence

DEFAULT = (
    Path(__file__).resolve().parents[2] / "scheduler" / "followups" / "cadences" / "default.yaml"
)
NY = ZoneInfo("America/New_York")
QUIET = QuietHours()
WEEKDAYS = BusinessDays()


def test_the_default_cadence_is_the_playbook() -> None:
    cadence = load_cadence(DEFAULT)
    assert set(cadence.sequences) >= {"new_lead", "reactivation", "rebook", "nurture"}
    new_lead = cadence.sequence("new_lead")
    assert [s.offset for s in new_lead.steps] == [
        timedelta(0),
        timedelta(days=1),
        timedelta(days=3),
        timedelta(days=7),
        timedelta(days=14),
    ]
    assert [s.purpose for s in new_lead.steps] == [
        "first_reply",
        "personal_follow_up",
        "value_nudge",
        "soft_check_in",
        "final_touch",
    ]
    assert new_lead.after_last == timedelta(days=14)
    assert cadence.sequence("reactivation").start_when_dormant_for == timedelta(days=60)
    with pytest.raises(UnknownSequenceError, match="known: new_lead"):
        cadence.sequence("nope")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", timedelta(0)),
        (0, timedelta(0)),
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("14d", timedelta(days=14)),
        ("2w", timedelta(days=14)),
    ],
)
def test_offsets(raw: object, expected: timedelta) -> None:
    assert parse_offset(raw) == expected


@pytest.mark.parametrize("raw", ["3", "3 days", "-1d", "d", ""])
def test_bad_offsets_are_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_offset(raw)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = write_cadence(tmp_path, text)
    with pytest.raises(CadenceError) as info:
        load_cadence(path)
    return [f"{p.line}: {p.message}" for p in info.value.problems]


def test_every_problem_has_its_line(tmp_path: Path) -> None:
    text = COMPRESSED.replace("offset: 3s", "offset: 3 days").replace(
        "template: final_touch.txt", "template: missing.txt"
    )
    text = text.replace("approval: true", "approval: maybe")
    problems = _problems(tmp_path, text)
    offset, approval = line_of(text, "offset: 3 days"), line_of(text, "approval: maybe")
    assert any(
        p.startswith(f"{offset}: sequences.new_lead.steps.2.offset: expected a duration")
        for p in problems
    ), problems
    assert any(p.startswith(f"{approval}: sequences.approved.steps.0.approval") for p in problems)


def test_semantic_problems(tmp_path: Path) -> None:
    text = COMPRESSED.replace("offset: 7s", "offset: 2s").replace(
        "template: final_touch.txt", "template: missing.txt"
    )
    problems = _problems(tmp_path, text)
    offset = line_of(text, "offset: 2s")
    template = line_of(text, "template: missing.txt")
    assert (
        f"{offset}: sequences.new_lead.steps.3.offset: offsets must increase from step to step"
        in problems
    )
    assert any(
        p.startswith(f"{template}: sequences.new_lead.steps.4.template") and "missing.txt" in p
        for p in problems
    ), problems


def test_unknown_fields_duplicate_keys_and_template_typos(tmp_path: Path) -> None:
    text = COMPRESSED.replace("version: test-compressed-1", "version: a\nversion: b\nspeed: 3")
    problems = _problems(tmp_path, text)
    assert any(p.startswith("2: duplicate key 'version'") for p in problems), problems
    assert any("speed" in p and "Extra inputs" in p for p in problems), problems
    (tmp_path / "templates" / "value_nudge.txt").write_text("Hi {{ lead.frist_name }}")
    problems = _problems(tmp_path, COMPRESSED)
    assert any("value_nudge.txt" in p and "frist_name" in p for p in problems), problems


def test_templates_are_sandboxed(tmp_path: Path) -> None:
    write_cadence(tmp_path)
    (tmp_path / "templates" / "value_nudge.txt").write_text(
        "{{ lead.__class__.__mro__[1].__subclasses__() }}"
    )
    problems = _problems(tmp_path, COMPRESSED)
    assert any("value_nudge.txt" in p for p in problems), problems


def test_cli_check(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(cli_app, ["cadence", "check", str(DEFAULT)])
    assert good.exit_code == 0, good.output
    assert "cadence OK" in good.output and "new_lead" in good.output
    text = COMPRESSED.replace("offset: 3s", "offset: soon")
    bad = write_cadence(tmp_path, text)
    result = runner.invoke(cli_app, ["cadence", "check", str(bad)])
    assert result.exit_code == 1
    where = f"{bad}:{line_of(text, 'offset: soon')}: sequences.new_lead.steps.2.offset"
    assert where in result.output.replace("\n", "")


# --- quiet hours and business days, in the lead's zone ----------------------------------------


def local(year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=NY)


def test_allowed_times_are_kept() -> None:
    due = local(2026, 3, 3, 10).astimezone(UTC)  # Tuesday 10:00 in New York
    assert next_allowed(due, NY, QUIET, WEEKDAYS) == due


def test_late_evening_moves_to_next_morning_local() -> None:
    due = local(2026, 3, 3, 21, 15).astimezone(UTC)
    assert next_allowed(due, NY, QUIET, WEEKDAYS) == local(2026, 3, 4, 8).astimezone(UTC)
    early = local(2026, 3, 4, 6, 59).astimezone(UTC)
    assert next_allowed(early, NY, QUIET, WEEKDAYS) == local(2026, 3, 4, 8).astimezone(UTC)


def test_weekend_moves_to_monday_across_the_dst_change() -> None:
    # Friday 6 March 2026 22:00 EST; clocks go forward on Sunday 8 March.
    due = local(2026, 3, 6, 22).astimezone(UTC)
    moved = next_allowed(due, NY, QUIET, WEEKDAYS)
    assert moved == datetime(2026, 3, 9, 12, 0, tzinfo=UTC)  # 08:00 EDT, not 09:00
    assert moved.astimezone(NY).time() == time(8, 0)


def test_the_same_instant_differs_by_zone() -> None:
    due = datetime(2026, 3, 3, 23, 0, tzinfo=UTC)  # 18:00 New York, 08:00 Tokyo next day
    assert next_allowed(due, NY, QUIET, WEEKDAYS) == due
    tokyo = ZoneInfo("Asia/Tokyo")
    assert next_allowed(due, tokyo, QUIET, WEEKDAYS) == due
    berlin = ZoneInfo("Europe/Berlin")  # 00:00 Berlin: quiet until 08:00
    assert next_allowed(due, berlin, QUIET, WEEKDAYS) == datetime(2026, 3, 4, 7, tzinfo=UTC)


def test_switched_off() -> None:
    due = local(2026, 3, 7, 23).astimezone(UTC)  # Saturday night
    off = next_allowed(due, NY, QuietHours(enabled=False), BusinessDays(enabled=False))
    assert off == due
    only_quiet = next_allowed(due, NY, QUIET, BusinessDays(enabled=False))
    assert only_quiet == local(2026, 3, 8, 8).astimezone(UTC)


def test_zone_of_the_lead() -> None:
    assert zone_for("Europe/Madrid", "+14155550123", "UTC") == ZoneInfo("Europe/Madrid")
    assert zone_for(None, "+4930123456", "UTC") == ZoneInfo("Europe/Berlin")
    assert zone_for(None, None, "Asia/Tokyo") == ZoneInfo("Asia/Tokyo")
    assert zone_for("Not/AZone", None, "UTC") == ZoneInfo("UTC")


def test_a_dormant_lead_hears_from_us_only_with_a_reps_approval() -> None:
    # The shipped reactivation: every step waits for a rep (issue 15), so a last call never
    # follows a reactivation note nobody approved.
    steps = load_cadence(DEFAULT).sequences["reactivation"].steps
    assert [s.id for s in steps] == ["reactivate", "last_call"]
    assert all(s.approval is True for s in steps)
