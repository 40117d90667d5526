"""Pure schedule maths: which scheduled instant (slot) is due now, for intervals and crontabs.

A slot is due when it is the latest scheduled instant not after `now` and later than both the
last run and the moment the schedule was defined or changed. After downtime that is one slot,
so a missed run is sent once, not once per missed slot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter


def interval_slot(anchor: datetime, every: timedelta, now: datetime) -> datetime | None:
    """The latest instant anchor + k*every (k >= 1) not after `now`."""
    if every <= timedelta(0):
        raise ValueError("an interval must be positive")
    if now < anchor + every:
        return None
    return anchor + ((now - anchor) // every) * every


def crontab_slot(expression: str, tz: str, now: datetime) -> datetime:
    """The latest instant matching the crontab `expression` (in time zone `tz`) not after `now`."""
    local_now = now.astimezone(ZoneInfo(tz))
    # croniter's get_prev() from an instant that matches exactly returns the one before: step a
    # microsecond past `now` so that an exact match counts.
    return croniter(expression, local_now + timedelta(microseconds=1)).get_prev(datetime)


def crontab_next(expression: str, tz: str, after: datetime) -> datetime:
    return croniter(expression, after.astimezone(ZoneInfo(tz))).get_next(datetime)


def due_slot(slot: datetime | None, last_run: datetime | None, defined_at: datetime) -> datetime | None:
    """`slot` if it has not run yet and is not older than the schedule's current definition."""
    if slot is None or slot <= defined_at:
        return None
    if last_run is not None and slot <= last_run:
        return None
    return slot


def is_valid_crontab(expression: str) -> bool:
    return croniter.is_valid(expression)


class crontab:  # noqa: N801 - Celery's name, so `from celery.schedules import crontab` ports
    """A crontab entry for `beat_schedule` (Celery's arguments; strings or ints)."""

    def __init__(self, minute: str | int = "*", hour: str | int = "*", day_of_week: str | int = "*",
                 day_of_month: str | int = "*", month_of_year: str | int = "*", **_: object):
        self.minute, self.hour, self.day_of_week = str(minute), str(hour), str(day_of_week)
        self.day_of_month, self.month_of_year = str(day_of_month), str(month_of_year)
        if not is_valid_crontab(self.expression):
            raise ValueError(f"{self.expression!r} is not a valid crontab line")

    @property
    def expression(self) -> str:
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} {self.day_of_week}"

    def __repr__(self) -> str:
        return f"<crontab: {self.expression}>"


class schedule:  # noqa: N801 - Celery's name
    """Every `run_every` (a timedelta or seconds), for `beat_schedule`."""

    def __init__(self, run_every: timedelta | float, **_: object):
        self.run_every = run_every if isinstance(run_every, timedelta) else timedelta(seconds=float(run_every))
