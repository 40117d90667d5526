"""Periodic tasks: slots, several schedulers at once, catch-up, admin edits and run-now."""

import tracemalloc
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from taskqueue.models import PeriodicRun, PeriodicTask, TaskResult
from taskqueue.scheduler import Scheduler
from tests.factories import CrontabScheduleFactory, PeriodicTaskFactory, TaskResultFactory

pytestmark = pytest.mark.any_broker  # eager: the scheduler and the database, no broker


@pytest.fixture
def eager(settings):
    settings.TASKQUEUE_TASK_ALWAYS_EAGER = True


def _every(seconds: int, name: str = "tick") -> PeriodicTask:
    return PeriodicTaskFactory(name=name, interval__every=seconds)


def test_two_schedulers_send_each_slot_once(transactional_db, eager):
    periodic = _every(5)
    start = periodic.date_changed
    first, second = Scheduler(), Scheduler()
    sent = 0
    for offset in range(0, 66):  # one tick per second for 65 s, both schedulers each time
        now = start + timedelta(seconds=offset, milliseconds=100)
        sent += first.send_due(now) + second.send_due(now)
    slots = list(PeriodicRun.objects.values_list("slot", flat=True))
    assert sent == len(slots) == 13 and len(set(slots)) == 13
    periodic.refresh_from_db()
    assert periodic.total_run_count == 13 and TaskResult.objects.filter(state="SUCCESS").count() == 13


def test_downtime_sends_a_missed_run_once(transactional_db, eager):
    periodic = _every(5)
    scheduler = Scheduler()
    assert scheduler.send_due(periodic.date_changed + timedelta(seconds=5.1)) == 1
    assert scheduler.send_due(periodic.date_changed + timedelta(minutes=10)) == 1  # 119 slots missed: one run
    assert scheduler.send_due(periodic.date_changed + timedelta(minutes=10, seconds=1)) == 0


def test_one_off_runs_once(transactional_db, eager):
    periodic = PeriodicTaskFactory(name="once", interval=None, run_at=timezone.now() + timedelta(seconds=30))
    scheduler = Scheduler()
    assert scheduler.send_due() == 0
    assert scheduler.send_due(timezone.now() + timedelta(seconds=31)) == 1
    periodic.refresh_from_db()
    assert not periodic.enabled and periodic.total_run_count == 1


def test_crontab_edit_applies_from_the_edit_on(transactional_db, eager, admin_client):
    periodic = PeriodicTaskFactory(name="nightly", interval=None, crontab=CrontabScheduleFactory(minute="0", hour="3"))
    crontab = periodic.crontab
    scheduler = Scheduler()
    assert scheduler.send_due(periodic.date_changed + timedelta(minutes=2)) == 0
    response = admin_client.post(f"/admin/taskqueue/crontabschedule/{crontab.pk}/change/", {
        "minute": "*", "hour": "*", "day_of_month": "*", "month_of_year": "*", "day_of_week": "*",
        "timezone": "UTC"})
    assert response.status_code == 302
    crontab.refresh_from_db()
    next_minute = (crontab.date_changed + timedelta(minutes=1)).replace(second=0, microsecond=0)
    assert scheduler.send_due(next_minute - timedelta(seconds=1)) == 0  # not before its new time
    assert scheduler.send_due(next_minute + timedelta(seconds=1)) == 1
    assert PeriodicRun.objects.get().slot == next_minute


def test_admin_run_now_links_the_result(transactional_db, eager, admin_client):
    periodic = _every(3600, name="hourly")
    response = admin_client.post("/admin/taskqueue/periodictask/", {
        "action": "run_now", "_selected_action": [periodic.pk]})
    assert response.status_code == 302
    run = PeriodicRun.objects.get()
    page = admin_client.get(f"/admin/taskqueue/periodictask/{periodic.pk}/change/")
    assert run.task_id.encode() in page.content and b"SUCCESS" in page.content


def test_cleanup_of_200000_expired_results_stays_in_bounded_memory(transactional_db, settings):
    from taskqueue import control

    old = connection.ops.adapt_datetimefield_value(timezone.now() - timedelta(days=3))
    table = TaskResult._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"INSERT INTO {table} (task_id, task_name, state, retries, queue, worker, date_created,"
                           f" date_done) SELECT 'old-' || i, 't', 'SUCCESS', 0, '', '', %s, %s"
                           f" FROM generate_series(1, 200000) AS i", [old, old])
        else:
            cursor.execute(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
                           f"INSERT INTO {table} (task_id, task_name, state, retries, queue, worker, date_created,"
                           f" date_done) SELECT 'old-' || i, 't', 'SUCCESS', 0, '', '', %s, %s FROM n", [old, old])
    TaskResultFactory(task_id="fresh")
    tracemalloc.start()
    deleted = control.cleanup(batch_size=5000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert deleted == 200000 and list(TaskResult.objects.values_list("task_id", flat=True)) == ["fresh"]
    assert peak < 20 * 1024 * 1024, f"cleanup peaked at {peak / 1e6:.1f} MB"


def test_beat_schedule_setting_is_synced_each_time_a_scheduler_starts(transactional_db, settings):
    """TASKQUEUE_BEAT_SCHEDULE written to rows: a changed entry is updated, a removed one disabled,
    an unchanged one not saved again (a save would restart its interval), admin rows left alone."""
    from taskqueue.scheduler import FROM_CODE
    from taskqueue.schedules import crontab

    by_admin = _every(30, name="made-in-the-admin")
    settings.TASKQUEUE_BEAT_SCHEDULE = {
        "a": {"task": "tests.tasks.add", "schedule": 60, "args": (1, 2)},
        "b": {"task": "tests.tasks.add", "schedule": crontab(minute="5"), "options": {"queue": "beat-b"}},
        "c": {"task": "tests.tasks.echo", "schedule": timedelta(minutes=5), "kwargs": {"value": "x"}},
    }
    Scheduler().run(lambda: True)  # writes the schedule, then stops before its first tick
    rows = {row.name: row for row in PeriodicTask.objects.all()}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a.task, a.args, a.interval.every, a.interval.period, a.enabled) == ("tests.tasks.add", [1, 2], 60,
                                                                               "seconds", True)
    assert (b.crontab.minute, b.interval, b.queue, b.enabled, b.description) == ("5", None, "beat-b", True, FROM_CODE)
    assert (c.kwargs, c.interval.every) == ({"value": "x"}, 300)

    settings.TASKQUEUE_BEAT_SCHEDULE = {
        "a": {"task": "tests.tasks.add", "schedule": 120, "args": (3, 4)},  # changed
        "c": {"task": "tests.tasks.echo", "schedule": timedelta(minutes=5), "kwargs": {"value": "x"}},  # unchanged
    }  # "b" removed
    Scheduler().run(lambda: True)
    rows = {row.name: row for row in PeriodicTask.objects.all()}
    assert (rows["a"].pk, rows["a"].args, rows["a"].interval.every, rows["a"].enabled) == (a.pk, [3, 4], 120, True)
    assert rows["a"].date_changed > a.date_changed  # saved: its interval restarts from the change
    assert (rows["b"].pk, rows["b"].enabled) == (b.pk, False)  # disabled, kept with its run history
    assert (rows["c"].date_changed, rows["c"].enabled) == (c.date_changed, True)  # not saved again
    assert rows["made-in-the-admin"].enabled and rows["made-in-the-admin"].date_changed == by_admin.date_changed
