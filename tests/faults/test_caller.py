"""The caller's side of a broker outage: `delay()` fails within a bounded time instead of hanging,
and `get()` keeps waiting through a blip until its own timeout."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from taskqueue import AsyncResult, states
from taskqueue.brokers import reset_broker
from taskqueue.conf import get_settings
from taskqueue.testing import start_worker
from tests.helpers import report, wait_until
from tests.tasks import add, slow_add

pytestmark = [pytest.mark.slow, pytest.mark.redis_only]


@pytest.mark.any_database  # a private Redis, no database
def test_delay_against_a_server_that_never_answers_fails_within_the_broker_timeout(fault_redis, settings):
    settings.TASKQUEUE_BROKER_TIMEOUT = 1.0
    reset_broker()  # a client with this timeout
    assert add.delay(1, 1).id  # reachable: sent
    fault_redis.pause()  # accepts connections, answers nothing
    began = time.monotonic()
    raised: list[BaseException] = []
    sender = threading.Thread(target=lambda: _send_catching(raised), daemon=True)
    sender.start()
    sender.join(30)  # bounded: a delay() that hangs fails the test here instead of stalling it
    assert not sender.is_alive(), "delay() still waiting on a server that never answers"
    report("delay() against a Redis that accepts but never answers (SIGSTOP)", sent=1,
           raised_after_s=time.monotonic() - began, broker_timeout_s=get_settings().BROKER_TIMEOUT)
    # the socket timeout of TASKQUEUE_BROKER_TIMEOUT is what ended the wait
    assert len(raised) == 1 and isinstance(raised[0], redis.TimeoutError), raised
    fault_redis.resume()
    assert add.delay(1, 3).id


def _send_catching(raised: list) -> None:
    try:
        add.delay(1, 2)
    except BaseException as exc:  # noqa: B036 - handed to the test thread, which asserts on it
        raised.append(exc)


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
