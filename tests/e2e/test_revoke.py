"""Revocation that tells the truth: terminate stops a running task, REVOKED is final, and a revoke
outlives the countdown of the message it cancels."""

import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from taskqueue import AsyncResult, control, states, store
from taskqueue.brokers import get_broker
from taskqueue.codecs import Outcome
from taskqueue.models import CancelledTask
from taskqueue.testing import start_worker
from tests.factories import CancelledTaskFactory, MessageFactory
from tests.helpers import held, report, wait_until
from tests.models import Run
from tests.tasks import add, record

pytestmark = pytest.mark.slow


def test_revoke_with_terminate_stops_the_running_task_within_seconds(transactional_db, broker_url):
    worker = start_worker("-c", "1", "-Q", "revoke")
    try:
        [consumer] = worker.children_pids()
        res = record.apply_async(("terminate-me", 30.0), queue="revoke")
        wait_until(lambda: Run.objects.filter(label="terminate-me").exists(), timeout=10, message="task started")
        revoked_at = time.monotonic()
        res.revoke(terminate=True)
        wait_until(lambda: consumer not in worker.children_pids(), timeout=3, message="its process stopped")
        report("revoke(terminate=True) of a running 30 s task", sent=1, stopped_after_s=time.monotonic() - revoked_at)
        wait_until(lambda: len(worker.children_pids()) == 1, timeout=15, message="a replacement consumer")
        assert AsyncResult(res.id).state == states.REVOKED
        assert Run.objects.get(label="terminate-me").finished is None  # it never got to the end
        assert add.apply_async((2, 3), queue="revoke").get(timeout=15) == 5  # the worker goes on
        wait_until(lambda: not held(get_broker(), res.id), timeout=5, message="the revoked message acked")
    finally:
        worker.terminate()


def test_revoked_is_final(transactional_db):
    message = MessageFactory(task="tests.tasks.add", args=(1, 2))
    store.save_outcomes([Outcome(message, states.STARTED, None)])
    control.revoke([message.id])
    store.save_outcomes([Outcome(message, states.SUCCESS, 3, encoded=3)])  # a late result
    store.save_state(message.id, "PROGRESS", {"done": 50})  # a late update_state()
    assert AsyncResult(message.id).state == states.REVOKED


def test_a_revoke_outlives_the_countdown_of_its_message(transactional_db, settings):
    settings.TASKQUEUE_RESULT_EXPIRES = 60
    res = add.apply_async((1, 1), queue=f"later-{uuid.uuid4().hex[:8]}", countdown=3600)
    control.revoke([res.id])
    lasts = timedelta(seconds=3600 + 60)
    if django_settings.TASKQUEUE_BROKER_URL.startswith("redis"):
        client = redis.Redis.from_url(django_settings.TASKQUEUE_BROKER_URL)
        ttl = client.pttl(f"{django_settings.TASKQUEUE_KEY_PREFIX}:cancelled:{res.id}") / 1000
        assert lasts.total_seconds() - 5 < ttl <= lasts.total_seconds()
    elif get_broker().reads_by_key:
        expires_at = CancelledTask.objects.get(task_id=res.id).expires_at
        assert abs(expires_at - (timezone.now() + lasts)) < timedelta(seconds=5)
    else:  # RabbitMQ: the eta cannot be read, so the revoke outlasts the longest countdown it keeps
        expires_at = CancelledTask.objects.get(task_id=res.id).expires_at
        assert expires_at - timezone.now() > timedelta(days=365)


def test_cleanup_drops_revoke_markers_that_ran_out(transactional_db):
    CancelledTaskFactory(task_id="old", expires_at=timezone.now() - timedelta(seconds=1))
    CancelledTaskFactory(task_id="current", expires_at=timezone.now() + timedelta(hours=1))
    control.cleanup()
    assert list(CancelledTask.objects.values_list("task_id", flat=True)) == ["current"]
