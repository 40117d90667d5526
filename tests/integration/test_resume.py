"""Resuming a failed task while the failed attempt's message is still held: the worker stores a
failure before it acks, so an operator (or a test) can resume in between. The new attempt must not
be taken for the held one and dropped by the broker's own dedup of keys queued or in flight."""

import uuid

from taskqueue import resume, states
from taskqueue.brokers import get_broker
from taskqueue.models import FailedCall, TaskResult
from tests.helpers import wait_until
from tests.tasks import add


def test_a_resume_while_the_failed_attempt_is_still_held_is_not_lost(transactional_db):
    queue = f"resume-{uuid.uuid4().hex[:8]}"
    sent = add.apply_async((1, 2), queue=queue)
    broker = get_broker()
    [held] = wait_until(lambda: broker.reserve("failed-attempt", [queue], timeout=0.5), timeout=10,
                        message="the first attempt taken")
    # what the worker stores for the failure, before its ack
    TaskResult.objects.update_or_create(task_id=sent.id, defaults={
        "task_name": add.name, "state": states.FAILURE, "args": [1, 2], "kwargs": {}, "queue": queue})
    FailedCall.objects.create(task_id=sent.id, call={"task": add.name, "args": [1, 2], "kwargs": {},
                                                     "options": {"queue": queue}})
    resume.resume(sent.id)
    broker.ack([held])
    [again] = wait_until(lambda: broker.reserve("failed-attempt", [queue], timeout=0.5), timeout=10,
                         message="the resumed attempt taken")  # by the same consumer, going on as a worker's does
    assert again.key.split("~", 1)[0] == sent.id and again.key != held.key
    broker.ack([again])
