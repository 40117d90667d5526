"""django.tasks on taskqueue: tasks written with Django's `@task` (tests/djtasks.py), enqueued
through `TASKS = {"default": {"BACKEND": "taskqueue.backends.TaskQueueBackend", ...}}` and run by
`runworker`."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

try:  # Django 6+, or Django 5.2 with the django-tasks backport
    from django.tasks import TaskResultStatus, task_backends
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued
except ImportError:
    pytest.importorskip("django_tasks")
    from django_tasks import TaskResultStatus, task_backends
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued
from django.test import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from taskqueue import chain  # noqa: E402
from taskqueue.models import TaskResult as ResultRow  # noqa: E402
from taskqueue.testing import start_worker  # noqa: E402
from tests import djtasks  # noqa: E402
from tests.helpers import wait_until  # noqa: E402
from tests.models import Run  # noqa: E402

pytestmark = pytest.mark.any_broker  # the backend publishes through the producer, whatever the broker

WORKER_ENV = {"DJANGO_SETTINGS_MODULE": "tests.django_tasks_settings"}
FINAL = (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)


@pytest.fixture
def worker(transactional_db, broker_url):
    started = start_worker("-c", "2", "-Q", "django-tasks,django-tasks-2", env=WORKER_ENV)
    yield started
    started.terminate()


def finished(result, timeout=15):
    def done():
        result.refresh()
        return result.status in FINAL

    wait_until(done, timeout=timeout, message=f"{result.task.name} finished")
    return result


def test_a_view_enqueues_and_the_worker_runs_it(worker, client):
    response = client.post("/django-tasks/multiply/", {"x": 6, "y": 7})
    assert response.status_code == 200
    result = djtasks.multiply.get_result(response.json()["id"])
    assert result.backend == "default" and result.args == [6, 7]
    finished(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 42
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    assert result.attempts == 1 and len(result.worker_ids) == 1 and result.worker_ids[0]
    assert result.errors == []
    # Django's signals, sent by the worker after the outcome was stored
    wait_until(lambda: len(Run.objects.filter(task_id=result.id)) == 2, timeout=5, message="both signals")
    signals = set(Run.objects.filter(task_id=result.id).values_list("label", flat=True))
    assert signals == {"started|multiply|RUNNING", "finished|multiply|SUCCESSFUL"}
    # the admin's row: a task like any other, named by its module path
    assert ResultRow.objects.get(task_id=result.id).task_name == "tests.djtasks.multiply"


def test_a_queued_task_is_ready_until_a_worker_takes_it(transactional_db, broker_url):
    received = []

    def on_enqueued(sender, task_result, **kwargs):
        received.append(task_result.id)

    task_enqueued.connect(on_enqueued)
    try:
        result = djtasks.multiply.enqueue(2, 3)
    finally:
        task_enqueued.disconnect(on_enqueued)
    assert received == [result.id]
    assert result.status == TaskResultStatus.READY and result.enqueued_at is not None
    assert result.started_at is None and result.finished_at is None and result.attempts == 0
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value
    worker = start_worker("-c", "1", "-Q", "django-tasks", env=WORKER_ENV)
    try:
        assert finished(result).return_value == 6
    finally:
        worker.terminate()


def test_a_failure_is_failed_with_its_errors(worker):
    result = finished(djtasks.fail_with.enqueue("bad input"))
    assert result.status == TaskResultStatus.FAILED
    [error] = result.errors
    assert error.exception_class is ValueError and "bad input" in error.traceback
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value


def test_run_after_defers_the_task(worker):
    run_after = timezone.now() + timedelta(seconds=1.5)
    result = djtasks.multiply.using(run_after=run_after).enqueue(3, 3)
    assert finished(result).return_value == 9
    assert result.started_at >= run_after


def test_priority_orders_the_queue(transactional_db, broker_url):
    low = djtasks.multiply.using(priority=-50).enqueue(1, 1)
    default = djtasks.multiply.enqueue(2, 2)
    high = djtasks.multiply.using(priority=80).enqueue(3, 3)
    worker = start_worker("-c", "1", "--prefetch", "1", "-Q", "django-tasks", env=WORKER_ENV)
    try:
        results = [finished(result) for result in (low, default, high)]
    finally:
        worker.terminate()
    order = sorted(results, key=lambda result: result.started_at)
    assert [result.id for result in order] == [high.id, default.id, low.id]


def test_takes_context(worker):
    result = finished(djtasks.with_context.enqueue("ctx"))
    assert result.return_value == {"label": "ctx", "id": result.id, "attempt": 1}


@pytest.mark.skipif(getattr(djtasks.flaky, "max_retries", None) is None,
                    reason="Django 6.1 passes @task options to the backend")
def test_task_options_through_the_decorator_are_honoured(worker):
    result = finished(djtasks.flaky.enqueue(3))
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 3
    assert result.attempts == 3


def test_aenqueue_an_async_task_and_aget_result(worker):
    async def scenario():
        result = await djtasks.async_multiply.aenqueue(4, 5)
        fetched = await djtasks.async_multiply.aget_result(result.id)
        await sync_to_async(connections.close_all, thread_sensitive=True)()  # the thread's connection
        return result, fetched

    result, fetched = asyncio.run(scenario())
    assert fetched.id == result.id
    assert finished(result).return_value == 20


def test_a_django_task_takes_part_in_the_canvas(worker):
    outcome = chain(djtasks.multiply.signature((2, 3)), djtasks.multiply.signature((10,)))()
    assert outcome.get(timeout=15) == 60


def test_check_reports_a_wrong_configuration():
    with override_settings(TASKS={"default": {"BACKEND": "taskqueue.backends.TaskQueueBackend",
                                              "QUEUES": [""], "OPTIONS": {"concurrency": 4}}}):
        ids = {error.id for error in task_backends["default"].check()}
    assert ids == {"taskqueue.E101", "taskqueue.E102"}


def test_enqueue_inside_a_transaction_follows_it(worker):
    from django.db import transaction

    from taskqueue.exceptions import TaskqueueError

    class Abort(TaskqueueError):
        pass

    with pytest.raises(Abort), transaction.atomic():
        rolled_back = djtasks.multiply.enqueue(5, 5)
        raise Abort
    with transaction.atomic():
        committed = djtasks.multiply.enqueue(6, 6)
    assert finished(committed).return_value == 36
    # neither its row nor its message exists: a worker that ran it would have written a row
    with pytest.raises(TaskResultDoesNotExist):
        djtasks.multiply.get_result(rolled_back.id)
