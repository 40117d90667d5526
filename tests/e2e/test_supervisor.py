"""The prefork supervisor: on Redis it sheds Django after forking its consumers (worker/keeper.py)."""

import os
import signal
from pathlib import Path

import psutil
import pytest

from taskqueue.testing import start_worker
from tests.factories import PeriodicTaskFactory
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add

pytestmark = pytest.mark.slow


def _keeper_running(pid: int) -> bool:
    return "taskqueue.worker.keeper" in " ".join(psutil.Process(pid).cmdline())


@pytest.mark.redis_only
def test_the_supervisor_of_a_prefork_redis_worker_holds_no_django(taskqueue_worker):
    worker = taskqueue_worker("-c", "2", "-Q", "lean")
    assert "supervisor:   without Django" in worker.output
    wait_until(lambda: _keeper_running(worker.pid), timeout=10, message="the keeper took over")
    supervisor = psutil.Process(worker.pid)
    maps = Path(f"/proc/{worker.pid}/maps").read_text()
    assert "psycopg" not in maps and "_sqlite3" not in maps  # no database driver loaded
    assert supervisor.memory_info().rss < 30 * 2**20  # django.setup() alone adds more than that
    consumers = supervisor.children()
    assert len(consumers) == 2
    assert all(consumer.memory_info().rss > 35 * 2**20 for consumer in consumers)  # they do hold Django
    assert add.apply_async((2, 3), queue="lean").get(timeout=10) == 5


@pytest.mark.redis_only
def test_the_keeper_replaces_its_scheduler_and_consumers_with_fresh_processes(transactional_db):
    PeriodicTaskFactory(name="lean-beat", interval__every=1, queue="leanbeat")
    worker = start_worker("-c", "1", "-Q", "leanbeat", "--beat")
    try:
        wait_until(lambda: _keeper_running(worker.pid), timeout=10, message="the keeper took over")
        wait_until(lambda: Run.objects.filter(label="lean-beat").exists(), timeout=15, message="a first tick")
        forked = worker.children_pids()
        assert len(forked) == 2  # the consumer and the scheduler
        for pid in forked:
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: len(set(worker.children_pids()) - set(forked)) == 2, timeout=15,
                   message="both replaced")
        ticks = Run.objects.filter(label="lean-beat").count()
        wait_until(lambda: Run.objects.filter(label="lean-beat").count() >= ticks + 2, timeout=20,
                   message="ticks sent by the new scheduler and run by the new consumer")
    finally:
        assert worker.terminate() == 0


def test_worker_shutdown_is_sent_where_django_runs(transactional_db, broker_url, tmp_path):
    """In the runworker process; with the keeper (prefork on Redis), in each consumer instead."""
    mark = tmp_path / "shutdown"
    worker = start_worker("-c", "2", "-Q", "shutdownmark", env={"TASKQUEUE_TEST_SHUTDOWN_MARK": str(mark)})
    consumers = set(worker.children_pids())
    assert worker.terminate() == 0
    senders = {int(line) for line in mark.read_text().split()}
    if broker_url.startswith("redis"):
        assert senders == consumers
    else:
        assert senders == {worker.pid}
