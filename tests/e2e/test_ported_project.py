"""A standard Celery + Django project (tests/celery_project: `proj/celery.py` with
`config_from_object` and `autodiscover_tasks`, `shop` and `notifications` apps), with `celery`
replaced by `taskqueue` in its imports and nothing else, run against a real worker started with
the project's own settings. The calls are the project's own (`shop/services.py`)."""

import importlib
import os
import sys
from pathlib import Path

import pytest

from taskqueue import AsyncResult, GroupResult, signals, states
from taskqueue.conf import get_settings
from taskqueue.testing import start_worker
from tests.helpers import wait_until
from tests.models import Run

PROJECT = Path(__file__).resolve().parents[1] / "celery_project"
PROJECT_ENV = {"DJANGO_SETTINGS_MODULE": "proj.settings", "PYTHONPATH": f"{PROJECT}{os.pathsep}{os.getcwd()}"}

@pytest.fixture(scope="module")
def project_path():
    sys.path.insert(0, str(PROJECT))
    try:
        importlib.import_module("shop.services")  # what the worker imports too: fails here, at once, if it cannot
        yield
    finally:
        sys.path.remove(str(PROJECT))


@pytest.fixture(scope="module")
def project_worker(project_path, broker_url, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        worker = start_worker("-c", "2", "-Q", "proj,proj-mail", "--hostname", "proj@tests", env=PROJECT_ENV)
    yield worker
    worker.terminate(timeout=20)


@pytest.fixture
def project(project_path, project_receivers, transactional_db, settings):
    """This process as the project's web process: its CELERY_* settings active, its modules loaded."""
    project_settings = importlib.import_module("proj.settings")
    for name in dir(project_settings):
        if name.startswith("CELERY_"):
            setattr(settings, name, getattr(project_settings, name))
    importlib.import_module("proj.celery")
    for signal, receiver in project_receivers:  # the publish signals are sent here, in the caller
        signal.connect(receiver)
    yield importlib.import_module("shop.services")
    for signal, receiver in project_receivers:  # this process is the project's only during the test
        signal.disconnect(receiver)


@pytest.fixture(scope="module")
def project_receivers(project_path) -> list:
    """The receivers shop/signals.py connects when imported (then disconnected: `project` connects
    them for its test only, so they do not record what other tests run in this process)."""
    receivers = _receivers(importlib.import_module("shop.signals"))
    for signal, receiver in receivers:
        signal.disconnect(receiver)
    return receivers


def _receivers(module) -> list:
    """(signal, receiver) of every receiver the project's signals module connects."""
    found = []
    for name in dir(signals):
        signal = getattr(signals, name)
        if isinstance(signal, signals.Signal):
            found += [(signal, receiver) for receiver in vars(module).values()
                      if callable(receiver) and getattr(receiver, "__module__", None) == module.__name__
                      and _connected(signal, receiver)]
    return found


def _connected(signal, receiver) -> bool:
    return any(ref() is receiver for _, ref, *_ in signal.receivers if callable(ref))


def recorded(signal: str, task_id: str | None = None) -> list[str]:
    runs = Run.objects.filter(label__startswith=f"{signal}|")
    if task_id is not None:
        runs = runs.filter(task_id=task_id)
    return [run.label.split("|", 1)[1] for run in runs.order_by("id")]


def test_the_project_configuration_reaches_the_caller(project):
    settings = get_settings()
    assert settings.DEFAULT_QUEUE == "proj" and settings.TRACK_STARTED and settings.PREFETCH == 1
    assert settings.ROUTES == {"notifications.tasks.*": {"queue": "proj-mail"}}
    assert settings.TASK_SOFT_TIME_LIMIT == 2 and settings.RESULT_EXPIRES.total_seconds() == 3600


def test_apply_async_options_retries_and_routing(project_worker, project):
    payment, receipt = project.place_order(7, "12.50", "ann@example.com")
    assert receipt.get(timeout=15) == "receipt for order 7 sent to ann@example.com"
    assert payment.get(timeout=15) == {"order_id": 7, "charged": "12.50", "attempts": 2}
    from taskqueue.models import TaskResult

    assert TaskResult.objects.get(task_id=receipt.id).queue == "proj-mail"  # CELERY_TASK_ROUTES
    assert TaskResult.objects.get(task_id=payment.id).queue == "proj"  # CELERY_TASK_DEFAULT_QUEUE
    # signals, with Celery's arguments, in the worker (prerun, retry, success, postrun) and here (publish)
    # published here, then again by the worker for the retry
    assert recorded("before_task_publish", payment.id) == ["shop.tasks.charge|proj|[7, '12.50']"] * 2
    assert "notifications.tasks.send_receipt|proj-mail|[7, 'ann@example.com']" in recorded("after_task_publish")
    assert recorded("task_prerun", payment.id) == ["shop.tasks.charge|[7, '12.50']|True"] * 2
    # the outcome signals follow the stored result and the sent retry (which woke get()), maybe in
    # another consumer than the attempt that succeeded: wait for each of them
    wait_until(lambda: recorded("task_retry", payment.id), timeout=10, message="task_retry of the first attempt")
    assert recorded("task_retry", payment.id) == ["shop.tasks.charge|PaymentGatewayError|0"]
    # each attempt's postrun, in either order: the retry is sent before the first attempt's postrun
    # (as in Celery), so the second attempt may finish first in the other consumer
    wait_until(lambda: len(recorded("task_postrun", payment.id)) == 2,
               timeout=5, message="task_postrun of both attempts")
    assert recorded("task_success", payment.id) == [
        "shop.tasks.charge|{'order_id': 7, 'charged': '12.50', 'attempts': 2}"]
    states = sorted(line.split("|")[1] for line in recorded("task_postrun", payment.id))
    assert states == ["RETRY", "SUCCESS"]


def test_the_worker_applies_the_default_soft_time_limit(project_worker, project):
    from shop.tasks import crunch

    assert crunch.delay(10).get(timeout=15) == "cut short"  # CELERY_TASK_SOFT_TIME_LIMIT = 2


def test_canvas(project_worker, project):
    assert project.order_totals([(10, 1), (20, 2), (30, 3)]).get(timeout=15) == 66
    assert project.pipeline(1).get(timeout=15) == 112
    fanned = project.fan_out([1, 2, 3])
    assert isinstance(fanned, GroupResult) and fanned.get(timeout=15) == [2, 4, 6]
    assert project.welcome("bob@example.com").get(timeout=15) == {"to": "bob@example.com", "message": "welcome"}


def test_link_error_and_task_failure(project_worker, project):
    res = project.refund_order(3)
    with pytest.raises(ValueError, match="cannot be refunded"):
        res.get(timeout=15)
    wait_until(lambda: recorded("task_failure", res.id), timeout=10, message="task_failure")
    assert recorded("task_failure", res.id) == ["shop.tasks.refund|ValueError|True"]
    assert project_worker.wait_for_output(f"Task {res.id} raised: ValueError", timeout=10)  # the errback's log


def test_control_revoke_terminate_and_inspect(project_worker, project):
    res = project.start_long_job(30)
    wait_until(lambda: AsyncResult(res.id).state == states.STARTED, timeout=10, message="started")
    # the worker is live from its next heartbeat (the database flush between tests drops its lease rows)
    active = wait_until(lambda: (project.running_jobs() or {}).get("proj@tests"), timeout=5, message="active")
    assert [(entry["id"], entry["name"]) for entry in active] == [(res.id, "shop.tasks.sleepy")]
    project.cancel(res.id)
    wait_until(lambda: recorded("task_revoked", res.id), timeout=10, message="task_revoked in the worker")
    assert recorded("task_revoked", res.id) == ["shop.tasks.sleepy|True|False"]
    assert AsyncResult(res.id).state == states.REVOKED
    wait_until(lambda: not (project.running_jobs() or {}).get("proj@tests"), timeout=10, message="no longer active")


def test_worker_ready_and_shutdown(project_path, transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "proj-idle", "--hostname", "idle@tests", env=PROJECT_ENV)
    try:
        wait_until(lambda: recorded("worker_ready"), timeout=10, message="worker_ready")
    finally:
        worker.terminate(timeout=20)
    wait_until(lambda: recorded("worker_shutdown"), timeout=10, message="worker_shutdown")
