"""When a touch may go out: quiet hours and business days in the lead's own time zone.

Pure functions of ``(due, zone, rules)``. Moving a time is done on the local wall clock
(``datetime.combine(day, 08:00, zone)``) and converted back to UTC, so "Monday 08:00" stays
08:00 across a DST change instead of drifting by an hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.followups.cadence import WEEKDAYS, BusinessDays, QuietHours
from scheduler.pipeline.contacts import timezone_for_phone


def zone_for(timezone: str | None, phone: str | None, default: str) -> ZoneInfo:
    """The lead's zone: its own (e.g. from Calendly), else its phone's, else ``default``."""
    for name in (timezone, timezone_for_phone(phone) if phone else None, default):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue  # a bad stored zone must not stop the cadence
    return ZoneInfo("UTC")


def _in_quiet(clock: time, quiet: QuietHours) -> bool:
    if not quiet.enabled or quiet.start == quiet.end:
        return False
    if quiet.start > quiet.end:  # wraps midnight, e.g. 20:00–08:00
        return clock >= quiet.start or clock < quiet.end
    return quiet.start <= clock < quiet.end


def _open_at(day_clock: time, quiet: QuietHours) -> time:
    """The first allowed time of a day."""
    if quiet.enabled and quiet.start > quiet.end:
        return quiet.end
    if quiet.enabled and quiet.start == time(0, 0) and quiet.end > quiet.start:
        return quiet.end
    return day_clock


def next_allowed(
    due: datetime, zone: ZoneInfo, quiet: QuietHours, business: BusinessDays
) -> datetime:
    """``due`` if it is allowed, else the first allowed moment after it (UTC-aware)."""
    if due.tzinfo is None:
        raise ValueError("naive datetime: pass UTC-aware times")
    days = {WEEKDAYS.index(d) for d in business.days} if business.enabled else set(range(7))
    local = due.astimezone(zone)
    for _ in range(16):  # a week of closed days plus quiet nights always ends within this
        is_business_day = local.weekday() in days
        if is_business_day and not _in_quiet(local.timetz().replace(tzinfo=None), quiet):
            return local.astimezone(UTC)
        clock = local.time()
        if not is_business_day:
            day = local.date() + timedelta(days=1)
            start = _open_at(time(0, 0), quiet)
        elif quiet.start > quiet.end and clock >= quiet.start:
            day, start = local.date() + timedelta(days=1), quiet.end
        else:
            day, start = local.date(), quiet.end
        local = datetime.combine(day, start, tzinfo=zone)
    raise ValueError("no allowed time found: check quiet hours and business days")
