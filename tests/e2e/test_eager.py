"""TASKQUEUE_TASK_ALWAYS_EAGER: the worker's path, in process, with results stored."""

import pytest

from taskqueue import states
from taskqueue.models import TaskResult
from tests.models import Run
from tests.tasks import add, always_retry, fail, on_error_id, whoami

pytestmark = pytest.mark.any_broker  # eager mode runs in process: no broker


@pytest.fixture
def eager(settings, transactional_db):
    settings.TASKQUEUE_TASK_ALWAYS_EAGER = True


def test_eager_runs_in_process_and_stores(eager):
    res = add.delay(2, 3)
    assert res.get() == 5 and res.state == states.SUCCESS
    assert TaskResult.objects.get(task_id=res.id).state == states.SUCCESS
    assert whoami.delay().get()["is_eager"] is True


def test_eager_failures_retries_and_errbacks(eager):
    res = fail.apply_async(link_error=on_error_id.s())
    with pytest.raises(ValueError):
        res.get()
    assert Run.objects.filter(label="errback-id", task_id=res.id).exists()
    retried = always_retry.delay("eager-retry")
    with pytest.raises(KeyError):
        retried.get()
    assert Run.objects.filter(label="eager-retry").count() == 4
    assert TaskResult.objects.get(task_id=retried.id).state == states.FAILURE


def test_apply_runs_now_without_eager_mode(transactional_db):
    assert add.apply((4, 4)).get() == 8
    assert add.s(1).apply((2,)).get() == 3


def test_eager_propagates_when_asked(eager, settings):
    settings.TASKQUEUE_TASK_EAGER_PROPAGATES = True
    with pytest.raises(ValueError):
        fail.delay()
