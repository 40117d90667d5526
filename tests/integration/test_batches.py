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


def test_a_batch_goes_on_with_the_chain_steps_its_tasks_send(queue, monkeypatch):
    """A consumer that sent a chain's next step takes it itself at once (`take_more`, a reserve
    that does not wait), before storing anything, rather than leaving it to a consumer still busy
    storing: the whole chain runs in one batch, and its steps are stored and acked together."""
    from taskqueue import chain

    if get_settings().BROKER_URL.startswith("amqp"):
        pytest.skip("RabbitMQ pushes a message to a consumer a moment after its publish: a reserve "
                    "that does not wait finds it only by chance")

    # The batch also ends once its outcomes are FLUSH_AFTER (20 ms) old; five steps, each a
    # committed publish, can take longer on a loaded machine (CI ran four suites at once).
    monkeypatch.setattr(batching, "FLUSH_AFTER", 10.0)
    batching._durations[add.name] = 0.0001  # known to be short in this process
    result = chain(add.s(1, 1).set(queue=queue), *[add.s(1).set(queue=queue) for _ in range(4)]).apply_async()
    broker = get_broker()
    batch = broker.reserve("consumer-x", [queue], count=1, timeout=5)
    assert len(batch) == 1
    taken: list[int] = []

    def take_more():
        more = broker.reserve("consumer-x", [queue], count=1, timeout=0)
        taken.append(len(more))
        return more

    assert batching.process(batch, _context("consumer-x"), take_more=take_more) is True
    assert taken == [1, 1, 1, 1]  # each step sent the next, and that was taken; the last sent nothing
    assert result.get(timeout=1) == 6  # stored when the batch ended: no other consumer ran a step
    steps, node = [], result
    while node is not None:
        steps.append(node.id)
        node = node.parent
    assert len(steps) == 5 and [_state(step) for step in steps] == [states.SUCCESS] * 5
    assert broker.reserve("consumer-y", [queue], count=5, timeout=0) == []  # nothing left, nothing held back


def test_a_batch_whose_take_more_fails_still_stores_what_ran(queue):
    """The broker gone when the batch asks for more: what ran is stored and acked all the same
    (not run again), the next step it sent ahead (which may have waited for that reserve, Redis
    carrying both in one round trip) is sent again by the flush, and the error goes on to the
    consumer, which gives back whatever a reserve whose reply was lost may have leased to it."""
    import redis

    from taskqueue import chain
    from taskqueue.outages import is_outage

    if get_settings().BROKER_URL.startswith("amqp"):
        pytest.skip("on RabbitMQ a message is pushed to one consumer's connection: another cannot reserve it")
    batching._durations[add.name] = 0.0001
    result = chain(add.s(2, 2).set(queue=queue), add.s(1).set(queue=queue)).apply_async()
    broker = get_broker()
    batch = broker.reserve("consumer-x", [queue], count=1, timeout=5)
    gone = redis.exceptions.ConnectionError("the broker went away")
    assert is_outage(gone)

    def take_more():
        raise gone

    with pytest.raises(redis.exceptions.ConnectionError):
        batching.process(batch, _context("consumer-x"), take_more=take_more)
    assert _state(result.parent.id) == states.SUCCESS and not held(broker, result.parent.id)
    # the next step waits in the queue for a consumer
    assert [d.key for d in broker.reserve("consumer-y", [queue], count=5, timeout=5)] == [result.id]


def test_without_take_more_a_batch_ends_with_its_own_deliveries(queue):
    from taskqueue import chain

    if get_settings().BROKER_URL.startswith("amqp"):
        pytest.skip("RabbitMQ pushes a message to a consumer a moment after its publish: a reserve "
                    "that does not wait finds it only by chance")

    batching._durations[add.name] = 0.0001

    result = chain(add.s(1, 1).set(queue=queue), add.s(1).set(queue=queue)).apply_async()
    broker = get_broker()
    assert batching.process(broker.reserve("consumer-x", [queue], count=1, timeout=5), _context("consumer-x"))
    assert _state(result.id) is None or _state(result.id) == states.PENDING  # the second step waits in the queue
    assert [d.key for d in broker.reserve("consumer-y", [queue], count=5, timeout=0)] == [result.id]


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


def test_a_redelivered_failure_calls_its_errbacks(queue):
    """A worker stores a failure, then calls the task's errbacks and fails the rest of its chain,
    then acks. One that died in between left the failure stored, and the redelivery, finding the
    task finished, only resent what follows a success: the errback was never called, and the later
    steps stayed PENDING. Both are done now (an errback at least once, as a task runs)."""
    from taskqueue import chain, store
    from tests.models import Run
    from tests.tasks import fail, on_error_request

    last = chain(fail.s().set(queue=queue).on_error(on_error_request.s()), add.s(1).set(queue=queue)).apply_async()
    first_id = last.parent.id
    broker = get_broker()
    [delivery] = broker.reserve("consumer-a", [queue], count=1, timeout=0)
    message = decode(delivery.body, get_settings().signing_key)
    assert message.id == first_id and len(message.chain) == 1
    store.save_outcomes([execute.failure(message, ValueError("boom"), "test-batches", None)])  # then it died
    broker.leases(requeue=["consumer-a"])  # what it held goes back, counted
    [again] = broker.reserve("consumer-b", [queue], count=1, timeout=0)
    assert again.redeliveries == 1
    assert batching.process([again], _context("consumer-b"))
    assert Run.objects.filter(label="errback-request:ValueError", task_id=first_id).count() == 1
    assert _state(first_id) == states.FAILURE and _state(last.id) == states.FAILURE  # never to run
    assert not held(broker, first_id)
