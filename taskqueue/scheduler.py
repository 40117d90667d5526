"""The scheduler (`runscheduler`, `runworker --beat`): sends each due periodic run exactly once.

Schedules are read from the database on every tick, so admin edits apply within a second. Any
number of schedulers may run: a run is recorded as a PeriodicRun that is unique per task and
slot, in the transaction that sends it, so only one scheduler's send of a slot commits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import IntegrityError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from . import control
from .app import added_periodic_tasks, send_task
from .conf import get_settings
from .models import CrontabSchedule, IntervalSchedule, PeriodicRun, PeriodicTask
from .schedules import crontab, schedule
from .utils import derived_id

logger = logging.getLogger("taskqueue.scheduler")


class Scheduler:
    """Checks every schedule each `tick` seconds and sends what is due; cleans up expired results."""

    def __init__(self, tick: float = 1.0, cleanup_every: float = 3600.0):
        self.tick = tick
        self.cleanup_every = cleanup_every
        self._next_cleanup = time.monotonic() + min(60.0, cleanup_every)

    def run(self, should_stop: Callable[[], bool]) -> None:
        logger.info("Scheduler started (tick %.1f s)", self.tick)
        try:
            sync_beat_schedule({**(get_settings().BEAT_SCHEDULE or {}), **added_periodic_tasks()})
        except Exception:
            logger.exception("Could not write beat_schedule to the PeriodicTask table")
        while not should_stop():
            started = time.monotonic()
            try:
                close_old_connections()
                self.send_due()
                self._maybe_cleanup()
            except Exception:
                logger.exception("Scheduler tick failed; trying again")
            _sleep_unless(max(0.0, self.tick - (time.monotonic() - started)), should_stop)

    def send_due(self, now: datetime | None = None) -> int:
        """Send every due slot; returns how many this scheduler sent."""
        now = now or timezone.now()
        sent = 0
        for periodic in PeriodicTask.objects.filter(enabled=True).select_related("interval", "crontab"):
            slot = periodic.due_slot(now)
            if slot is not None and send_run(periodic, slot):
                sent += 1
        return sent

    def _maybe_cleanup(self) -> None:
        if time.monotonic() >= self._next_cleanup:
            self._next_cleanup = time.monotonic() + self.cleanup_every
            deleted = control.cleanup()
            if deleted:
                logger.info("Deleted %d expired result(s)", deleted)


def send_run(periodic: PeriodicTask, slot: datetime) -> bool:
    """Record and send one run of `periodic` for `slot`; False if another scheduler already did."""
    task_id = derived_id(f"periodic:{periodic.pk}", slot.isoformat())
    try:
        with transaction.atomic():
            PeriodicRun.objects.create(periodic_task=periodic, slot=slot, task_id=task_id)
            updates = {"last_run_at": slot, "total_run_count": F("total_run_count") + 1}
            if periodic.run_at is not None:
                updates["enabled"] = False
            PeriodicTask.objects.filter(pk=periodic.pk).update(**updates)
            # published when this transaction commits (TASKQUEUE_ENQUEUE_ON_COMMIT)
            send_task(periodic.task, periodic.args, periodic.kwargs, task_id=task_id,
                      **({"queue": periodic.queue} if periodic.queue else {}))
    except IntegrityError:
        return False
    logger.info("Sent %s (%s) for %s as %s", periodic.name, periodic.task, slot.isoformat(), task_id)
    return True


FROM_CODE = "From beat_schedule (settings); edits here are overwritten when a scheduler starts."


def sync_beat_schedule(entries: dict) -> None:
    """Write Celery's beat_schedule (TASKQUEUE_BEAT_SCHEDULE) as PeriodicTask rows; rows written
    so before and gone from it are disabled. A row is saved only if it changed (a save restarts
    its interval)."""
    for name, entry in entries.items():
        every = entry["schedule"]
        if isinstance(every, schedule):
            every = every.run_every
        values = {"task": entry["task"], "args": list(entry.get("args") or ()),
                  "kwargs": dict(entry.get("kwargs") or {}), "queue": (entry.get("options") or {}).get("queue", ""),
                  "interval": None, "crontab": None, "run_at": None, "enabled": True, "description": FROM_CODE}
        if isinstance(every, crontab):
            values["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=every.minute, hour=every.hour, day_of_month=every.day_of_month,
                month_of_year=every.month_of_year, day_of_week=every.day_of_week,
                timezone=str(timezone.get_default_timezone()))
        else:
            seconds = every.total_seconds() if isinstance(every, timedelta) else float(every)
            values["interval"], _ = IntervalSchedule.objects.get_or_create(every=max(1, round(seconds)),
                                                                           period="seconds")
        row = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
        if row.pk is None or any(getattr(row, field) != value for field, value in values.items()):
            for field, value in values.items():
                setattr(row, field, value)
            row.save()
    PeriodicTask.objects.filter(description=FROM_CODE, enabled=True).exclude(name__in=list(entries)).update(
        enabled=False)


def run_now(periodic: PeriodicTask) -> str:
    """Send a run at once (the admin's "run now"), recorded like a scheduled one."""
    slot = timezone.now()
    send_run(periodic, slot)
    return derived_id(f"periodic:{periodic.pk}", slot.isoformat())


def _sleep_unless(seconds: float, should_stop: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not should_stop():
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
