"""The caller's side of a broker outage: `delay()` fails within a bounded time instead of hanging,
and `get()` keeps waiting through a blip until its own timeout."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from taskqueue import AsyncResult, states
from taskqueue.conf import get_settings
from taskqueue.testing import start_worker
from tests.helpers import report, wait_until
from tests.tasks import add, slow_add

pytestmark = [pytest.mark.slow, pytest.mark.redis_only]


@pytest.mark.any_database  # a private Redis, no database
def test_delay_against_a_server_that_never_answers_fails_within_the_broker_timeout(fault_redis):
    assert add.delay(1, 1).id  # reachable: sent
    fault_redis.pause()  # accepts connections, answers nothing
    began = time.monotonic()
    with pytest.raises(redis.TimeoutError):
        add.delay(1, 2)
    failed_after = time.monotonic() - began
    report("delay() against a Redis that accepts but never answers (SIGSTOP)", sent=1, raised_after_s=failed_after)
    assert failed_after < get_settings().BROKER_TIMEOUT + 2
    fault_redis.resume()
    assert add.delay(1, 3).id


def test_get_waits_through_a_redis_blip(transactional_db, fault_redis):
    worker = start_worker("-c", "1", "-Q", "blip", env={"TASKQUEUE_TEST_REDIS_URL": fault_redis.url})
    try:
        sent = slow_add.apply_async((1, 2), {"seconds": 1.0}, queue="blip")
        got: list = []
        waiter = threading.Thread(target=lambda: got.append(_get(sent.id)), daemon=True)
        waiter.start()
        wait_until(lambda: AsyncResult(sent.id).state == states.STARTED, timeout=10, message="task started")
        fault_redis.stop()  # the task finishes while Redis is down: its worker holds the notification
        wait_until(lambda: AsyncResult(sent.id).state == states.SUCCESS, timeout=10, message="result stored")
        fault_redis.start()
        waiter.join(20)
        report("get() waiting while Redis goes down and comes back", sent=1, lost=0, duplicate_runs=0,
               failed=0 if got == [3] else 1)
        assert got == [3]
        assert worker.process.poll() is None
    finally:
        worker.terminate()


def _get(task_id: str):
    try:
        return AsyncResult(task_id).get(timeout=15)
    except Exception as exc:  # the assertion shows what get() raised instead
        return exc
