"""The seeds' basic examples with `celery` replaced by `taskqueue`, against a real worker."""

import taskqueue
from taskqueue import AsyncResult, control, states
from taskqueue.testing import start_worker
from tests.helpers import held
from tests.tasks import add, progress, whoami


def test_add_delay_get(worker):
    assert add.delay(2, 2).get(timeout=10) == 4


def test_apply_async_on_the_celery_queue(worker):
    res = add.apply_async(args=(2, 4), queue="celery")
    assert res.get(timeout=10) == 6
    assert res.status == states.SUCCESS
    from taskqueue.models import TaskResult

    row = TaskResult.objects.get(task_id=res.id)
    assert row.queue == "celery" and row.worker == "shared@tests" and row.task_name == "tests.tasks.add"
    assert row.args == [2, 4] and row.date_done is not None


def test_send_task_by_name(worker):
    assert taskqueue.send_task("tests.tasks.add", (2, 5)).get(timeout=10) == 7
    assert taskqueue.app.send_task("tests.tasks.add", args=[1], kwargs={"y": 2}).get(timeout=10) == 3


def test_request_id_is_the_callers_id(worker):
    res = whoami.apply_async(task_id="my-own-id-1")
    info = res.get(timeout=10)
    assert res.id == "my-own-id-1" and info["id"] == "my-own-id-1"
    assert info["queue"] == "default" and info["hostname"] == "shared@tests" and not info["is_eager"]


def test_progress_observed_through_on_message(worker):
    seen = []
    res = progress.delay(3)
    final = res.get(on_message=seen.append, propagate=False, timeout=10)
    assert final == "done"
    progress_values = [m["result"]["progress"] for m in seen if m["status"] == "PROGRESS"]
    assert progress_values == [33, 66, 100]
    assert seen[-1]["status"] == states.SUCCESS


def test_polling_a_task_as_the_seed_does(worker):
    res = progress.delay(2)
    polled = AsyncResult(res.id)
    assert polled.state in (states.PENDING, states.STARTED, "PROGRESS")
    res.get(timeout=10)
    assert progress.AsyncResult(res.id).state == states.SUCCESS


def test_exists_tells_unknown_from_queued(worker, broker_url):
    assert not AsyncResult("never-sent").exists()
    queued = add.apply_async((1, 1), queue="nobody-listens")
    assert queued.exists() and queued.state == states.PENDING

    assert control.purge("nobody-listens") == 1


def test_countdown_is_kept_in_the_broker_not_in_the_worker(worker):
    from taskqueue.brokers import get_broker

    res = add.apply_async((3, 3), countdown=1)
    assert held(get_broker(), res.id) and res.state == states.PENDING  # still in the broker
    assert res.get(timeout=10) == 6


def test_expired_task_is_revoked_not_run(worker):
    from datetime import timedelta

    from django.utils import timezone

    res = add.apply_async((1, 1), eta=timezone.now() + timedelta(seconds=1), expires=0.5)
    assert res.get(timeout=10, propagate=False).__class__.__name__ == "TaskRevokedError"
    assert res.state == states.REVOKED


def test_worker_runs_only_its_queues(transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "only-here", "--pool", "threads")
    try:
        assert add.apply_async((1, 2), queue="only-here").get(timeout=10) == 3
        assert "tests.tasks.add" in worker.output and "only-here" in worker.output
    finally:
        assert worker.terminate() == 0
