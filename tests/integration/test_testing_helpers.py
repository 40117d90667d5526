"""The testing helpers users get: assert_enqueued / queued on what waits in a queue, and run_queued
running it in the test's process through the worker's own path."""

import pytest

from taskqueue import chain
from taskqueue.testing import assert_enqueued, queued, run_queued
from tests.tasks import add, fail

pytestmark = [pytest.mark.any_database]  # reserve and release are the broker's

QUEUE = "in-process"  # not a queue the session's shared worker consumes


def test_assert_enqueued_finds_a_message_and_leaves_it_queued(transactional_db, broker_url):
    add.apply_async((2, 3), queue=QUEUE)
    add.apply_async((4, 5), kwargs={}, queue=QUEUE, priority=9)
    message = assert_enqueued("tests.tasks.add", args=[2, 3], queue=QUEUE)
    assert message.task == "tests.tasks.add" and list(message.args) == [2, 3]
    assert [list(m.args) for m in queued(QUEUE)] == [[4, 5], [2, 3]]  # in the order workers take them
    with pytest.raises(AssertionError, match=r"no tests.tasks.add\(9, 9\) ready in queue 'in-process'"):
        assert_enqueued("tests.tasks.add", args=[9, 9], queue=QUEUE)
    assert len(queued(QUEUE)) == 2  # looking changed nothing
    assert run_queued([QUEUE]) == 2


def test_run_queued_runs_a_chain_to_its_end_in_this_process(transactional_db, broker_url):
    result = chain(add.s(1, 1).set(queue=QUEUE), add.s(2).set(queue=QUEUE), add.s(3).set(queue=QUEUE))()
    ok = add.apply_async((10, 10), queue=QUEUE)
    bad = fail.apply_async(queue=QUEUE)
    assert run_queued([QUEUE]) == 5  # three steps, each sent by the one before, and two more
    assert result.get(timeout=1) == 7 and ok.get(timeout=1) == 20
    with pytest.raises(ValueError, match="boom"):
        bad.get(timeout=1)
    assert queued(QUEUE) == []
