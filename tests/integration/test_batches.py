"""Batches: a consumer runs a reserved batch back to back, but a long task never holds short ones.

These drive `batching.process` directly against the configured broker and database (no worker
process), on a queue no test worker consumes, so which consumer holds what is under our control.
"""

import threading
import uuid

import pytest

from taskqueue import control, states
from taskqueue.brokers import get_broker
from taskqueue.conf import get_settings
from taskqueue.message import decode
from taskqueue.models import TaskResult
from taskqueue.worker import batch as batching
from taskqueue.worker import execute
from tests.helpers import held, wait_until
from tests.tasks import add, echo, grow, slow_add


@pytest.fixture
def queue(transactional_db):
    name = f"batch-{uuid.uuid4().hex[:8]}"
    yield name
    control.purge(name)


def _context(consumer_id: str) -> execute.ExecutionContext:
    return execute.ExecutionContext(broker=get_broker(), hostname="test-batches", consumer_id=consumer_id)


def _state(task_id: str) -> str | None:
    return TaskResult.objects.filter(task_id=task_id).values_list("state", flat=True).first()


def _process_in_background(batch, consumer_id: str) -> threading.Event:
    """Run `batching.process` in a thread; the returned event is set when it returns, with the
    batch's return value as `.complete`."""
    done = threading.Event()

    def run_batch():
        try:
            done.complete = batching.process(batch, _context(consumer_id))
        finally:
            from django.db import connection

            connection.close()
            done.set()

    threading.Thread(target=run_batch, daemon=True).start()
    return done


def test_short_tasks_behind_a_long_one_go_back_to_the_queue_at_once(queue):
    batching._durations.pop(slow_add.name, None)  # never timed here: treated as long, so it runs alone
    slow = slow_add.apply_async((1, 1), {"seconds": 1.5}, queue=queue)
    quick = [add.apply_async((i, i), queue=queue) for i in range(3)]
    broker = get_broker()
    batch = broker.reserve("consumer-a", [queue], count=4, timeout=0)
    assert [d.key for d in batch] == [slow.id, *[r.id for r in quick]]

    done = _process_in_background(batch, "consumer-a")
    taken = []
    wait_until(lambda: taken.extend(broker.reserve("consumer-b", [queue], count=10, timeout=0)) or len(taken) == 3,
               timeout=1.0)
    assert [d.key for d in taken] == [r.id for r in quick]  # handed back in their order
    assert not done.is_set() and _state(slow.id) not in states.READY_STATES  # the long task still runs
    batching._durations[add.name] = 0.0001  # known short, so consumer b runs its three in one batch
    assert batching.process(taken, _context("consumer-b"))
    assert [r.get(timeout=5) for r in quick] == [0, 2, 4]
    assert done.wait(5) and done.complete is False
    assert slow.get(timeout=5) == 2
    assert not any(held(broker, r.id) for r in [slow, *quick])


def test_a_batch_of_short_tasks_is_stored_and_acked_together(queue):
    batching._durations[add.name] = 0.0001  # known to be short in this process
    results = [add.apply_async((i, 1), queue=queue) for i in range(5)]
    broker = get_broker()
    batch = broker.reserve("consumer-c", [queue], count=5, timeout=0)
    assert len(batch) == 5
    assert batching.process(batch, _context("consumer-c")) is True
    assert [_state(r.id) for r in results] == [states.SUCCESS] * 5
    assert [r.get(timeout=5) for r in results] == [1, 2, 3, 4, 5]
    assert not any(held(broker, r.id) for r in results)


def test_a_task_that_turns_out_long_has_the_rest_handed_back_while_it_runs(queue):
    batching._durations[slow_add.name] = 0.0001  # believed short, so it starts inside the batch
    batching._durations[add.name] = 0.0001
    before = add.apply_async((100, 1), queue=queue)
    slow = slow_add.apply_async((2, 2), {"seconds": 1.5}, queue=queue)
    quick = [add.apply_async((i, 10), queue=queue) for i in range(2)]
    broker = get_broker()
    batch = broker.reserve("consumer-d", [queue], count=4, timeout=0)
    assert len(batch) == 4
    finished = _process_in_background(batch, "consumer-d")
    taken = []
    wait_until(lambda: taken.extend(broker.reserve("consumer-e", [queue], count=10, timeout=0)) or len(taken) == 2,
               timeout=1.0)  # the watchdog gave them back after about 0.1 s, not after 1.5 s
    assert [d.key for d in taken] == [r.id for r in quick] and not finished.is_set()
    # what finished before the long task was stored and acked by the watchdog too, not held
    assert before.get(timeout=1) == 101 and not finished.is_set()
    wait_until(lambda: not held(broker, before.id), timeout=1.0)  # acked right after its waiter woke
    assert batching.process(taken, _context("consumer-e"))
    assert [r.get(timeout=5) for r in quick] == [10, 11]
    assert finished.wait(5) and finished.complete is False  # cut short: the consumer reserves fewer next
    assert slow.get(timeout=5) == 4


def test_a_returned_object_is_stored_and_passed_on_as_it_was_when_its_task_returned(queue):
    """Outcomes of a batch are written at its flush: a later task of the batch that changes what an
    earlier one returned must change neither its stored result nor what its callback receives."""
    batching._durations[grow.name] = 0.0001  # known short: both run in one batch, one flush
    key = uuid.uuid4().hex
    first = grow.apply_async((key, 1), queue=queue, link=echo.s().set(queue=queue))
    second = grow.apply_async((key, 2), queue=queue)
    broker = get_broker()
    batch = broker.reserve("consumer-f", [queue], count=2, timeout=0)
    assert [d.key for d in batch] == [first.id, second.id]
    assert batching.process(batch, _context("consumer-f"))
    assert first.get(timeout=5) == [1] and second.get(timeout=5) == [1, 2]
    (callback,) = broker.reserve("consumer-f", [queue], count=5, timeout=0)
    assert decode(callback.body, get_settings().signing_key).args == ([1],)
    broker.ack([callback])
