"""The seeds' basic examples with `celery` replaced by `taskqueue`, against a real worker."""

import pytest

import taskqueue
from taskqueue import AsyncResult, control, states
from taskqueue.models import TaskResult
from taskqueue.testing import start_worker
from tests.helpers import held, wait_until
from tests.models import Run
from tests.tasks import (
    add,
    add_with_base,
    error_handler,
    fail,
    multiply,
    progress,
    subtract,
    success_callback,
    sum_of_two_numbers,
    tsum,
    whoami,
)


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


@pytest.mark.reads_by_key
def test_exists_tells_unknown_from_queued(worker, broker_url):
    assert not AsyncResult("never-sent").exists()
    queued = add.apply_async((1, 1), queue="nobody-listens")
    assert queued.exists() and queued.state == states.PENDING

    assert control.purge("nobody-listens") == 1


@pytest.mark.reads_by_key
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


# -- the seeds' app object: Celery(...), app.conf, config_from_object ---------------------------

def test_cheatsheet_proj_celery_py(worker, broker_url, app_conf):
    """notes-celery-cheatsheet.md, proj/celery.py (the Redis URLs replaced by the test run's broker)."""
    CELERY_BROKER_URL = broker_url  # noqa: N806 - as the seed names it
    CELERY_RESULT_BACKEND = "redis://localhost:6379"  # noqa: N806
    app = taskqueue.Celery("proj",
                           broker=CELERY_BROKER_URL,
                           backend=CELERY_RESULT_BACKEND,
                           include=["tests.tasks"])
    # Optional configuration, see the application user guide.
    app.conf.update(
        result_expires=3600,
    )
    # Change default Queue name
    app.conf.task_default_queue = "default"
    from taskqueue.conf import get_settings

    assert get_settings().result_expires.total_seconds() == 3600 and get_settings().DEFAULT_QUEUE == "default"
    assert add.delay(2, 2).get(timeout=10) == 4
    assert app.send_task("tests.tasks.add", (2, 5)).get(timeout=10) == 7
    parent = app.GroupResult.restore("f7991cea-03ce-4467-9a65-4b3331c6f66a")
    task = app.AsyncResult("2303c00d-50b3-4c01-bf44-3d2aea741f19", parent=parent)
    assert task.parent is None and task.state == states.PENDING


def test_slides_minimal_app(worker, broker_url, app_conf):
    """slides-celery-distributed-task-queue.md: Celery('tasks', broker=..., backend='redis://')."""
    app = taskqueue.Celery(
        "tasks",
        broker=broker_url,
        backend="redis://",
    )
    assert app.conf.broker_url == broker_url
    assert add.delay(1, 4).get(timeout=10) == 5


def test_what_is_celery_config_from_object_with_include(transactional_db, app_conf, settings):
    """notes-what-is-celery.md: `celery_server.config_from_object(obj=config, silent=False, force=True)`
    with a config module whose `include` names the tasks module."""
    import types

    from taskqueue.registry import find

    config = types.ModuleType("avengercon.celery.config")
    config.include = ["tests.e2e.celery_included"]
    celery_server: taskqueue.Celery = taskqueue.Celery(main="avengercon")
    celery_server.config_from_object(obj=config, silent=False, force=True)
    included = find("tests.e2e.celery_included.included_task")
    assert included is not None
    settings.TASKQUEUE_TASK_ALWAYS_EAGER = True  # the shared worker does not import that module
    assert included.delay().get(timeout=10) == "included"


# -- notes-celery-cheatsheet.md: tasks ----------------------------------------------------------

def test_cheatsheet_logging(transactional_db, settings, caplog):
    """### Logging: `from celery.utils.log import get_task_logger` (run eagerly: the shared worker
    does not import this module)."""
    app = taskqueue.app
    from taskqueue.utils.log import get_task_logger

    logger = get_task_logger(__name__)

    @app.task
    def add(x, y):
        logger.info('Adding {0} + {1}'.format(x, y))  # noqa: UP030, UP032 - as the seed writes it
        return x + y

    settings.TASKQUEUE_TASK_ALWAYS_EAGER = True
    with caplog.at_level("INFO", logger=__name__):
        res = add.delay(2, 3)
    assert res.get(timeout=5) == 5
    [record] = [r for r in caplog.records if r.name == __name__]
    assert record.getMessage() == "Adding 2 + 3" and record.task_id == res.id


def test_cheatsheet_task_names(worker):
    """**Names**: `@app.task(name='sum-of-two-numbers')`."""
    assert sum_of_two_numbers.name == "sum-of-two-numbers"
    assert taskqueue.send_task("sum-of-two-numbers", (2, 3)).get(timeout=10) == 5


def test_cheatsheet_task_inheritance(worker):
    """**Task Inheritance**: `@app.task(base=MyBase)` whose on_failure runs in the worker."""
    res = add_with_base.delay(1, 2)
    assert isinstance(res.get(timeout=10, propagate=False), KeyError) and res.state == states.FAILURE
    wait_until(lambda: Run.objects.filter(task_id=res.id).exists(), timeout=5, message="on_failure")
    assert list(Run.objects.filter(task_id=res.id).values_list("label", flat=True)) == [
        "MyBase.on_failure:KeyError"]


# -- notes-celery-cheatsheet.md: signatures and calling them ------------------------------------

def test_cheatsheet_extracting_signatures(worker):
    """**Extracting a Signature**, options 1 to 3, immutable and partial signatures."""
    from taskqueue import signature

    option_1 = signature("tests.tasks.add", args=(2, 2))
    option_2 = add.signature((2, 2))
    option_3 = add.s(2, 2)
    assert option_1 == option_2 == option_3
    assert [s.delay().get(timeout=10) for s in (option_1, option_2, option_3)] == [4, 4, 4]
    assert add.s(2, 2, debug=True)["kwargs"] == {"debug": True}
    partial = add.s(2)
    assert partial.delay(4).get(timeout=10) == 6  # 4 + 2
    immutable = add.signature((2, 2), immutable=True)
    assert immutable.immutable and immutable.delay(4).get(timeout=10) == 4


def test_cheatsheet_calling_a_signature_in_the_current_process(transactional_db):
    """**Calling Signatures**: `add.s(2, 2)()` executes in the current process."""
    assert add.s(2, 2)() == 4
    assert not TaskResult.objects.exists()  # nothing was sent, nothing stored


def test_cheatsheet_callback(worker):
    """**Callbacks**: `add.apply_async((2, 2), link=add.s(8))`: the callback gets the return value."""
    res = add.apply_async((2, 2), link=add.s(8))
    assert res.get(timeout=10) == 4
    wait_until(lambda: res.children, timeout=10, message="the callback's row")
    [callback] = res.children
    assert callback.get(timeout=10) == 12


def test_cheatsheet_errback_old_style(worker):
    """**Errbacks**: `link_error=error_handler.s()`, an errback taking the failed task's id."""
    add.apply_async((2, 2), link_error=error_handler.s()).get(timeout=10)  # as the seed: add succeeds
    failed = fail.apply_async((2, 2), link_error=error_handler.s())
    assert isinstance(failed.get(timeout=10, propagate=False), ValueError)
    wait_until(lambda: Run.objects.filter(label__startswith="error_handler").exists(), timeout=10,
               message="error_handler ran")
    assert list(Run.objects.values_list("label", "task_id")) == [("error_handler:ValueError", failed.id)]


def test_cheatsheet_send_task_with_a_link(worker):
    """#### Examples: `app.send_task("remote.processing", link=success_callback.s())`."""
    app = taskqueue.app
    res = app.send_task("remote.processing", link=success_callback.s())
    assert res.get(timeout=10) == "processed"
    wait_until(lambda: Run.objects.filter(label="success_callback:processed").exists(), timeout=10,
               message="success_callback ran")


# -- notes-celery-cheatsheet.md: groups, chords, serializing results -------------------------------

def test_cheatsheet_chord_saved_with_its_parent(worker):
    """#### Groups: `task = chord(group_tasks)(callback)`, then `task.parent.save()` and `.children`."""
    from taskqueue import chord, group

    callback = tsum.s()
    group_tasks = group([
        add.s(5, 5),
        subtract.s(20, 10),
        multiply.s(2, 5),
    ])
    task = chord(group_tasks)(callback)
    task.parent.save()
    assert task.get(timeout=20) == 30
    assert task.parent.children == task.parent.results and len(task.parent.children) == 3
    restored = taskqueue.app.GroupResult.restore(task.parent.id)
    assert [r.id for r in restored.children] == [r.id for r in task.parent.children]
    assert restored.get(timeout=10) == [10, 10, 10]
    again = taskqueue.app.AsyncResult(task.id, parent=restored)
    assert again.parent == restored and again.get(timeout=10) == 30


def test_cheatsheet_serializing_result_definitions(worker):
    """#### Serializing Result Definitions: `as_tuple()`, `json.dumps`, `result_from_tuple`
    (the seed's second step `multiple(4, 7)` is a typo; a signature taking the first's result here)."""
    import json

    from taskqueue import chain
    from taskqueue.result import result_from_tuple

    result = chain(
        add.s(1, 2), multiply.s(4)
    ).apply_async()
    res = result.as_tuple()
    serialized = json.dumps(res)
    rehydrated_res = result_from_tuple(json.loads(serialized))
    assert rehydrated_res.id == result.id and rehydrated_res.parent.id == result.parent.id
    assert rehydrated_res.get(timeout=10) == 12 and rehydrated_res.parent.get(timeout=10) == 3
