"""TASKQUEUE_ENQUEUE_ON_COMMIT: publish after commit, never after a rollback."""

import uuid

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from taskqueue import chain, control, states
from taskqueue.brokers import get_broker
from taskqueue.models import TaskResult
from tests.helpers import held, wait_until
from tests.tasks import add


def test_delay_in_a_committed_transaction_runs_after_commit(worker):
    with transaction.atomic():
        res = add.delay(1, 2)
        assert res.id and not held(get_broker(), res.id)  # not published yet
    assert res.get(timeout=10) == 3


def test_delay_in_a_rolled_back_transaction_never_runs(worker):
    try:
        with transaction.atomic():
            doomed = add.delay(5, 5)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    # Both consumers are idle once a later task finished; the doomed one was never published.
    assert add.delay(1, 1).get(timeout=10) == 2
    assert not held(get_broker(), doomed.id)
    assert not TaskResult.objects.filter(task_id=doomed.id).exists()
    assert not doomed.exists()


def test_enqueue_on_commit_can_be_turned_off(worker, settings):
    settings.TASKQUEUE_ENQUEUE_ON_COMMIT = False
    with transaction.atomic():
        res = add.delay(2, 2)
        # sent before the commit: in the broker, or already run and acked by the live worker
        if get_broker().reads_by_key:
            assert held(get_broker(), res.id) or res.state == states.SUCCESS
        else:  # RabbitMQ cannot be read by key: the worker runs it before the commit
            wait_until(lambda: res.state == states.SUCCESS, timeout=10, message="run before the commit")
    assert res.get(timeout=10) == 4


@pytest.mark.redis_only  # the database broker's enqueue is a query by design
def test_sending_a_task_outside_a_transaction_touches_no_database(transactional_db, broker_url):
    """No extra write on the enqueue path: the queues page and the workflow view read the broker
    and the results; a lone task's send is one Redis call and no query. An applied canvas writes
    one row, its outline (for the workflow view)."""
    queue = f"noquery-{uuid.uuid4().hex[:8]}"
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as queries:
        sent = add.apply_async((1, 2), queue=queue)
        delayed = add.delay(3, 4)
    assert [query["sql"] for query in queries.captured_queries] == []
    assert held(get_broker(), sent.id)  # its queue has no worker
    assert held(get_broker(), delayed.id) or delayed.get(timeout=10) == 7  # the default queue's worker may have run it
    with CaptureQueriesContext(connection) as queries:
        chain(add.s(1, 1), add.s(2)).set(queue=queue).apply_async()
    writes = [query["sql"] for query in queries.captured_queries
              if query["sql"].split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")]
    assert len(writes) == 1 and "taskqueue_" in writes[0]  # the outline, one row
    control.purge(queue)
