"""Delivery under failure: killed workers and children, leases, time limits, shutdown, Redis restarts."""

import os
import signal
import time

import pytest

from taskqueue import control, states
from taskqueue.brokers import get_broker
from taskqueue.exceptions import TimeLimitExceeded
from taskqueue.testing import start_worker
from tests.helpers import RedisServer, report, start_workers, wait_until, waits_in
from tests.models import Run
from tests.tasks import add, hard_limited, record, soft_limited, suicide

pytestmark = pytest.mark.slow


def test_soft_time_limit_raises_inside_the_task(worker):
    assert soft_limited.delay().get(timeout=10) == "caught soft limit"


def test_hard_time_limit_kills_and_replaces_the_child(worker):
    res = hard_limited.delay()
    with pytest.raises(TimeLimitExceeded):
        res.get(timeout=15)
    assert res.state == states.FAILURE
    assert add.delay(1, 1).get(timeout=10) == 2  # the worker goes on with a fresh child


def test_a_task_too_large_for_its_slot_is_still_failed_at_its_hard_time_limit(worker):
    res = hard_limited.delay(padding="x" * 100_000)  # the supervisor's slot keeps 64 KB of a body
    with pytest.raises(TimeLimitExceeded):
        res.get(timeout=15)
    assert res.state == states.FAILURE


def test_child_killed_mid_task_is_replaced_and_the_task_runs_again(worker):
    res = suicide.delay("suicide")
    assert res.get(timeout=20) == "survived"
    pids = list(Run.objects.filter(label="suicide").values_list("pid", flat=True))
    assert len(pids) == 2 and pids[0] != pids[1]


def test_sigkilled_worker_hands_its_task_to_another_after_its_lease(transactional_db, broker_url, request):
    shared = request.getfixturevalue("shared_worker")  # any live worker's supervisor may take the lease over
    first = start_worker("-c", "1", "-Q", "handover")
    res = record.apply_async(("handover", 1.0), queue="handover")
    wait_until(lambda: Run.objects.filter(label="handover").exists(), timeout=10, message="first run started")
    first.kill()
    killed_at = time.monotonic()
    second = start_worker("-c", "1", "-Q", "handover")
    try:
        pid = res.get(timeout=30)
        report("a SIGKILLed worker's task run by another", sent=1, handed_over_after_s=time.monotonic() - killed_at,
               lease_s=float(os.environ.get("TASKQUEUE_VISIBILITY_TIMEOUT", "3")))
        # taken back because the dead worker's lease ran out, not by any other way (RabbitMQ takes
        # it back when the dead worker's connection closes)
        assert get_broker().takes_back_on_disconnect or any(
            "Recovered 1 message(s) from workers that stopped heartbeating" in worker.output
            for worker in (shared, second)), second.output
        assert pid in second.children_pids() or pid != Run.objects.filter(label="handover").first().pid
        assert Run.objects.filter(label="handover").count() == 2
    finally:
        second.terminate()


def test_long_task_on_a_live_worker_is_never_handed_over(transactional_db, broker_url):
    """A task that runs over two and a half leases (8 s against 3 s) stays with its live worker: its
    heartbeats renew the lease, so the idle worker never takes the task over."""
    env = {"TASKQUEUE_VISIBILITY_TIMEOUT": "3"}
    busy, idle = start_workers(("-c", "1", "-Q", "long"), ("-c", "1", "-Q", "long"), env=env)
    try:
        res = record.apply_async(("long", 8.0), queue="long")
        res.get(timeout=30)
        assert Run.objects.filter(label="long").count() == 1
    finally:
        busy.terminate()
        idle.terminate()


def test_warm_shutdown_finishes_the_running_task(transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "warm")
    res = record.apply_async(("warm", 1.5), queue="warm")
    wait_until(lambda: Run.objects.filter(label="warm").exists(), timeout=10, message="task started")
    worker.process.send_signal(signal.SIGTERM)
    later = add.apply_async((1, 1), queue="warm")
    assert worker.process.wait(20) == 0
    assert res.state == states.SUCCESS and Run.objects.get(label="warm").finished is not None
    assert later.state == states.PENDING and waits_in(get_broker(), "warm", later.id)  # not taken during shutdown
    control.purge("warm")


def test_second_signal_is_a_cold_shutdown_and_the_task_goes_back(transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "cold")
    res = record.apply_async(("cold", 20.0), queue="cold")
    wait_until(lambda: Run.objects.filter(label="cold").exists(), timeout=10, message="task started")
    worker.process.send_signal(signal.SIGTERM)
    assert worker.wait_for_output("Warm shutdown", timeout=5)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(10) == 0
    assert res.state != states.SUCCESS
    assert waits_in(get_broker(), "cold", res.id)  # requeued for another worker
    assert control.purge("cold") == 1


@pytest.mark.redis_only
def test_worker_survives_a_redis_restart(transactional_db, settings):
    server = RedisServer().start()
    settings.TASKQUEUE_BROKER_URL = server.url
    worker = start_worker("-c", "1", "-Q", "restart", env={"TASKQUEUE_TEST_REDIS_URL": server.url})
    try:
        assert add.apply_async((1, 2), queue="restart").get(timeout=10) == 3
        server.stop()
        # it noticed and keeps trying
        assert worker.wait_for_output("Connection problem", timeout=15), worker.output[-4000:]
        server = RedisServer(server.port).start()
        res = wait_until(lambda: _send_when_up(), timeout=10, message="publish after restart")
        assert res.get(timeout=20) == 5
        assert worker.process.poll() is None
    finally:
        worker.terminate()
        server.stop()


def _send_when_up():
    try:
        return add.apply_async((2, 3), queue="restart")
    except Exception:
        return None
