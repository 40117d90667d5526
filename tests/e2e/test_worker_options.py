"""runworker options: pools, max-tasks-per-child, hostname, the banner; revoke; get() in a task."""

import pytest

from taskqueue import AsyncResult, states
from taskqueue.brokers import get_broker
from taskqueue.exceptions import TaskRevokedError
from tests.helpers import held, wait_until
from tests.models import Run
from tests.tasks import add, leak, record, waits_on_another


def test_banner_lists_broker_queues_and_tasks(taskqueue_worker):
    worker = taskqueue_worker("-c", "1", "-Q", "banner", "--hostname", "bannerhost", "--pool", "solo")
    for text in ("taskqueue worker bannerhost", "broker:", "queues:       banner", "concurrency:  1 (solo)",
                 "supervisor:   this process", "tests.tasks.add"):
        assert text in worker.output
    assert add.apply_async((2, 2), queue="banner").get(timeout=10) == 4


def test_threads_pool(taskqueue_worker):
    taskqueue_worker("-c", "3", "-Q", "threaded", "--pool", "threads")
    results = [record.apply_async((f"t{i}", 0.2), queue="threaded") for i in range(6)]
    pids = {r.get(timeout=20) for r in results}
    assert len(pids) == 1  # threads share the worker process


def test_max_tasks_per_child_recycles_processes(taskqueue_worker, broker_url):
    worker = taskqueue_worker("-c", "1", "-Q", "recycle", "--max-tasks-per-child", "2")
    pids = [record.apply_async((f"r{i}",), queue="recycle").get(timeout=20) for i in range(5)]
    assert len(set(pids)) == 3 and pids[0] == pids[1] and pids[2] == pids[3] and pids[1] != pids[2]
    if broker_url.startswith("redis"):  # the limit no longer keeps Django in the supervisor
        assert "supervisor:   without Django" in worker.output


def test_max_memory_per_child_replaces_a_process_that_grew(taskqueue_worker):
    worker = taskqueue_worker("-c", "1", "-Q", "memory", "--max-memory-per-child", "200000")
    grown = leak.apply_async((300,), queue="memory").get(timeout=20)  # keeps 300 MB: over 200,000 KiB
    after = record.apply_async(("after-leak",), queue="memory").get(timeout=30)
    assert grown != after and "over --max-memory-per-child" in worker.output
    assert record.apply_async(("steady",), queue="memory").get(timeout=10) == after  # under the limit: kept


def test_get_inside_a_task_raises_runtime_error(worker):
    res = waits_on_another.delay()
    with pytest.raises(RuntimeError, match="Never call result.get"):
        res.get(timeout=10)


def test_revoked_task_is_skipped(worker):
    res = record.apply_async(("revoked",), countdown=1)
    res.revoke()
    assert res.state == states.REVOKED
    with pytest.raises(TaskRevokedError):
        res.get(timeout=5)
    later = record.apply_async(("after-revoke",), countdown=1.2)
    later.get(timeout=10)  # the revoked one was due earlier, so the worker has seen it by now
    assert not Run.objects.filter(label="revoked").exists()
    assert AsyncResult(res.id).state == states.REVOKED


def test_forget_deletes_the_row(worker):
    res = add.delay(1, 2)
    res.get(timeout=10)
    # Waiters are woken as soon as the row is committed, the ack follows: until then the message
    # is still in flight, and exists() rightly says so.
    wait_until(lambda: not held(get_broker(), res.id), timeout=5, message="ack")
    res.forget()
    assert AsyncResult(res.id).state == states.PENDING and not res.exists()
