"""Nothing committed is lost when the broker is down: a delay() inside atomic() is kept in the
outbox table of that transaction, and a worker publishes it once the broker is back."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from taskqueue import outbox
from taskqueue.brokers import get_broker
from taskqueue.models import OutboxMessage
from taskqueue.testing import start_worker
from tests.helpers import held, report
from tests.models import Run
from tests.tasks import add

pytestmark = [pytest.mark.slow, pytest.mark.redis_only]


def test_a_commit_while_redis_is_down_loses_nothing(transactional_db, fault_redis):
    fault_redis.stop()
    with transaction.atomic():
        Run.objects.create(label="order")
        sent = add.delay(20, 22)
    # the caller's transaction committed without an error, and its message is kept beside its rows
    assert Run.objects.filter(label="order").exists()
    assert list(OutboxMessage.objects.values_list("key", flat=True)) == [sent.id]
    fault_redis.start()
    back = time.monotonic()
    worker = start_worker("-c", "1", env={"TASKQUEUE_TEST_REDIS_URL": fault_redis.url})
    try:
        # relayed by a worker (here maybe the session's shared worker, which reads the same database)
        assert sent.get(timeout=20) == 42
        assert not OutboxMessage.objects.exists()
        report("delay() inside atomic() while Redis is down, then Redis back and a worker started", sent=1, lost=0,
               duplicate_runs=0, failed=0, recovery_s=time.monotonic() - back)
    finally:
        worker.terminate()


def test_with_the_broker_up_a_worker_clears_the_row_without_publishing_again(transactional_db, fault_redis,
                                                                            settings):
    broker = get_broker()
    with transaction.atomic():
        sent = add.delay(1, 1)
        assert OutboxMessage.objects.count() == 1
        assert not held(broker, sent.id)  # not before the commit
    assert held(broker, sent.id) and broker.inspect([sent.id]).published == {sent.id}
    [delivery] = broker.reserve("outbox-test", ["default"], timeout=0)
    broker.ack([delivery])  # run and done: publishing it again would run it twice
    settings.TASKQUEUE_OUTBOX_RELAY_AFTER = 0
    assert outbox.relay(broker) == 0  # nothing republished
    assert not OutboxMessage.objects.exists() and not held(broker, sent.id)


def test_a_rolled_back_send_leaves_nothing(transactional_db, fault_redis):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            dropped = add.delay(2, 2)
            raise RuntimeError("roll back")
    assert not held(get_broker(), dropped.id) and not OutboxMessage.objects.exists()
