"""The database broker and the scheduler as processes: killed workers, two schedulers, the demo."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest

from taskqueue.models import PeriodicRun, TaskResult
from taskqueue.testing import WorkerProcess, start_worker
from tests.factories import PeriodicTaskFactory
from tests.helpers import start_workers, wait_until
from tests.models import Run
from tests.tasks import slow_add

pytestmark = pytest.mark.slow
DB_BROKER = {"TASKQUEUE_TEST_BROKER": "django"}


@pytest.fixture
def db_broker(settings, transactional_db):
    settings.TASKQUEUE_BROKER_URL = "django://"


@pytest.mark.database_broker  # whatever the run's broker: run in its runs only
@pytest.mark.skipif("os.environ.get('DATABASE_URL', 'postgres').startswith('sqlite')",
                    reason="the 2,000-task test is specified for PostgreSQL")
def test_2000_tasks_survive_a_killed_worker(db_broker):
    first, second = start_workers(("-c", "2", "-Q", "bulk"), ("-c", "2", "-Q", "bulk"), env=DB_BROKER)
    try:
        from taskqueue.canvas import group

        results = group(slow_add.s(i, 1, 0.002).set(queue="bulk") for i in range(2000))()
        wait_until(lambda: TaskResult.objects.filter(state="SUCCESS").count() >= 1000, timeout=120,
                   interval=0.1, message="half the tasks done")
        first.kill()
        assert results.join(timeout=180) == [i + 1 for i in range(2000)]
        assert TaskResult.objects.filter(state="SUCCESS", task_name="tests.tasks.slow_add").count() == 2000
    finally:
        first.kill()
        second.terminate()


@pytest.mark.database_broker
def test_a_waiter_on_postgresql_takes_the_outcome_from_the_notification(db_broker, monkeypatch):
    """The worker's result write notifies waiters on PostgreSQL with the signed outcome when it is
    small, as on Redis: get() does not read the finished row (only the unfinished one, before
    waiting and when woken by STARTED)."""
    from django.db import connection

    from taskqueue import AsyncResult, states

    if connection.vendor != "postgresql":
        pytest.skip("waiters on SQLite are woken by a doorbell, which carries no outcome")
    worker = start_worker("-c", "1", env=DB_BROKER)
    try:
        assert slow_add.delay(1, 1, 0).get(timeout=10) == 2
        read = []
        fetch = AsyncResult._fetch

        def reading(self):
            row = fetch(self)
            read.append(row.state if row is not None else states.PENDING)
            return row

        monkeypatch.setattr(AsyncResult, "_fetch", reading)
        for i in range(5):
            # interval: no re-read of the row while it waits (the task ends long before 5 s)
            assert slow_add.delay(i, 1, 0.02).get(timeout=10, interval=5) == i + 1
        assert read and states.SUCCESS not in read, read
    finally:
        worker.terminate()


@pytest.mark.database_broker  # whatever the run's broker: run in its runs only
def test_two_schedulers_send_each_slot_once(db_broker):
    """Two `runscheduler` processes race for every slot of a 2-second schedule: each slot is sent
    once, none is skipped, and each run executes once. (tests/integration/test_scheduler.py proves
    the same over 65 s of simulated clock; this is the real processes and the real clock.)"""
    PeriodicTaskFactory(name="every-two", interval__every=2, queue="ticks")
    worker = start_worker("-c", "1", "-Q", "ticks", env=DB_BROKER)
    env = {**WorkerProcess(env=DB_BROKER).env, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-m", "django", "runscheduler", "--tick", "0.25"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        wait_until(lambda: PeriodicRun.objects.count() >= 4, timeout=30, message="four slots sent")
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=10)[0] for proc in procs]
        assert all("scheduler ready" in output for output in outputs), outputs
        slots = sorted(PeriodicRun.objects.values_list("slot", flat=True))
        assert len(slots) == len(set(slots)) >= 4, outputs
        gaps = [later - earlier for earlier, later in zip(slots, slots[1:])]
        assert gaps == [timedelta(seconds=2)] * len(gaps), (slots, outputs)  # consecutive slots: none skipped
        wait_until(lambda: TaskResult.objects.filter(task_name="tests.tasks.tick", state="SUCCESS").count()
                   == len(slots), timeout=20, message="every run's result")
        assert Run.objects.filter(label="every-two").count() == len(slots)  # each slot ran once
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        worker.terminate()


@pytest.mark.database_broker
def test_runworker_beat_sends_periodic_tasks(db_broker):
    PeriodicTaskFactory(name="beat", interval__every=1, queue="beat")
    worker = start_worker("-c", "1", "-Q", "beat", "--beat", env=DB_BROKER)
    try:
        assert "scheduler (--beat)" in worker.output
        wait_until(lambda: TaskResult.objects.filter(task_name="tests.tasks.tick", state="SUCCESS").count() >= 2,
                   timeout=20, message="two periodic runs")
    finally:
        assert worker.terminate() == 0


@pytest.mark.any_broker  # the demo's defaults, whatever the run's
@pytest.mark.any_database
def test_demo_defaults_run_on_sqlite_without_redis(tmp_path):
    """A clean checkout: no TASKQUEUE_BROKER_URL, no DATABASE_URL: SQLite and the database broker."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "TASKQUEUE_BROKER_URL", "DJANGO_SETTINGS_MODULE")
           and not key.startswith("TASKQUEUE_")}
    env.update(DJANGO_SETTINGS_MODULE="demo_project.settings", DEMO_DATABASE_PATH=str(tmp_path / "demo.sqlite3"),
               PYTHONPATH=os.getcwd())
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, check=True)
    worker = subprocess.Popen([sys.executable, "manage.py", "runworker", "-c", "2"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        script = ("from demo_project.demo.tasks import add, tsum\n"
                  "from taskqueue import chord\n"
                  "from taskqueue.conf import get_settings\n"
                  "assert get_settings().BROKER_URL == 'django://'\n"
                  "header = [add.s(i, i) for i in range(5)]\n"
                  "print(add.delay(2, 2).get(timeout=30), chord(header)(tsum.s()).get(timeout=30))")
        out = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], env=env, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == "4 20"
    finally:
        os.killpg(worker.pid, 9)
        worker.wait(10)
