"""Periodic tasks: interval and crontab schedules, the tasks they run, and each run sent."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from .. import schedules


class _Edited(models.Model):
    """Remembers when it was last saved: an edited schedule applies from that moment on."""

    date_changed = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not kwargs.get("update_fields"):
            self.date_changed = timezone.now()
        super().save(*args, **kwargs)


class IntervalSchedule(_Edited):
    """Every N seconds, minutes, hours or days."""

    PERIODS = [("seconds", "seconds"), ("minutes", "minutes"), ("hours", "hours"), ("days", "days")]

    every = models.PositiveIntegerField()
    period = models.CharField(max_length=10, choices=PERIODS, default="seconds")

    class Meta:
        ordering = ["period", "every"]

    @property
    def timedelta(self) -> timedelta:
        return timedelta(**{self.period: self.every})

    def clean(self) -> None:
        if not self.every:
            raise ValidationError({"every": "An interval must be at least 1."})

    def __str__(self) -> str:
        return f"every {self.every} {self.period}"


class CrontabSchedule(_Edited):
    """A crontab line (minute hour day-of-month month day-of-week) in a time zone."""

    minute = models.CharField(max_length=240, default="*")
    hour = models.CharField(max_length=96, default="*")
    day_of_month = models.CharField(max_length=124, default="*")
    month_of_year = models.CharField(max_length=64, default="*")
    day_of_week = models.CharField(max_length=64, default="*")
    timezone = models.CharField(max_length=64, default="UTC")

    @property
    def expression(self) -> str:
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} {self.day_of_week}"

    def clean(self) -> None:
        if not schedules.is_valid_crontab(self.expression):
            raise ValidationError(f"{self.expression!r} is not a valid crontab line.")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"Unknown time zone {self.timezone!r}."}) from None

    def __str__(self) -> str:
        return f"{self.expression} ({self.timezone})"


class PeriodicTask(_Edited):
    """A task sent on a schedule (interval, crontab, or once at `run_at`)."""

    name = models.CharField(max_length=200, unique=True)
    task = models.CharField(max_length=255, help_text="Registered task name, e.g. myapp.tasks.report")
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    queue = models.CharField(max_length=255, blank=True, default="", help_text="Empty: the task's own routing")
    interval = models.ForeignKey(IntervalSchedule, null=True, blank=True, on_delete=models.PROTECT)
    crontab = models.ForeignKey(CrontabSchedule, null=True, blank=True, on_delete=models.PROTECT)
    run_at = models.DateTimeField(null=True, blank=True, help_text="Run once at this time")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True, default="")
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    total_run_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["name"]

    def clean(self) -> None:
        kinds = [kind for kind in (self.interval_id, self.crontab_id, self.run_at) if kind]
        if len(kinds) != 1:
            raise ValidationError("Choose exactly one of: an interval, a crontab, or a one-off run time.")
        if not isinstance(self.args, list) or not isinstance(self.kwargs, dict):
            raise ValidationError("args must be a JSON list and kwargs a JSON object.")

    def due_slot(self, now):
        """The scheduled instant to send now, or None."""
        if self.run_at is not None:
            return self.run_at if self.run_at <= now and not self.total_run_count else None
        schedule = self.interval or self.crontab
        defined_at = max(self.date_changed, schedule.date_changed)
        if self.interval is not None:
            slot = schedules.interval_slot(defined_at, self.interval.timedelta, now)
        else:
            slot = schedules.crontab_slot(self.crontab.expression, self.crontab.timezone, now)
        return schedules.due_slot(slot, self.last_run_at, defined_at)

    def __str__(self) -> str:
        return self.name


class PeriodicRun(models.Model):
    """One scheduled instant sent: unique per task and slot, so two schedulers never both send it."""

    periodic_task = models.ForeignKey(PeriodicTask, on_delete=models.CASCADE, related_name="runs")
    slot = models.DateTimeField()
    task_id = models.CharField(max_length=255, unique=True)
    date_sent = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-slot"]
        constraints = [models.UniqueConstraint(fields=["periodic_task", "slot"], name="tq_one_run_per_slot")]

    def __str__(self) -> str:
        return f"{self.periodic_task} @ {self.slot:%Y-%m-%d %H:%M:%S}"
