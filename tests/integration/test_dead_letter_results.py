"""A dead letter fails its task's result (so get() raises), never a finished one; requeueing puts
back to PENDING only what dead-lettering failed."""

import pytest

from taskqueue import AsyncResult, states, store
from taskqueue.codecs import Outcome
from taskqueue.exceptions import DeadLettered
from tests.factories import MessageFactory

pytestmark = pytest.mark.any_broker  # rows only


def test_dead_lettering_fails_an_unfinished_result_and_requeueing_undoes_only_that(transactional_db):
    waiting, finished, failed = (MessageFactory(task="tests.tasks.add") for _ in range(3))
    store.save_outcomes([Outcome(finished, states.SUCCESS, 3, encoded=3),
                         Outcome(failed, states.FAILURE, ValueError("boom"))])
    for message in (waiting, finished, failed):
        store.fail_dead_lettered(message.id, message.task, "dead-lettered: no task named 'x'")
    with pytest.raises(DeadLettered, match="no task named"):
        AsyncResult(waiting.id).get(timeout=1)
    assert AsyncResult(finished.id).get(timeout=1) == 3  # a finished task keeps its outcome

    assert store.unfail_dead_lettered([waiting.id, finished.id, failed.id]) == 1
    assert AsyncResult(waiting.id).state == states.PENDING
    assert AsyncResult(finished.id).state == states.SUCCESS and AsyncResult(failed.id).state == states.FAILURE
