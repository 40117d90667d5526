"""How get() waits: a fresh waiter blocks on the task's outcome list; older results are read first."""

import time

import pytest
from django.conf import settings

from taskqueue import AsyncResult, notify
from taskqueue.exceptions import TimeoutError
from taskqueue.notify import _redis_client
from tests.tasks import add, always_retry, echo

pytestmark = pytest.mark.redis_only


def _outcome_key(task_id: str) -> str:
    return f"{settings.TASKQUEUE_KEY_PREFIX}:outcome:{task_id}"


def test_a_fresh_waiter_gets_the_signed_outcome_kept_for_a_short_while(worker):
    result = add.delay(2, 3)
    assert result._sent_at is not None
    assert result.get(timeout=10) == 5
    client = _redis_client()
    kept = client.lrange(_outcome_key(result.id), 0, -1)
    assert len(kept) == 1 and kept[0].endswith(b'["SUCCESS",5,null]')
    assert 0 < client.ttl(_outcome_key(result.id)) <= notify.OUTCOME_TTL
    assert result.get(timeout=1) == 5  # a second waiter still finds it (the element is rotated, not taken)


def test_a_large_outcome_is_read_from_the_database(worker):
    value = "x" * 10_000
    result = echo.delay(value)
    assert result.get(timeout=10) == value
    assert _redis_client().lrange(_outcome_key(result.id), 0, -1) == [b"1"]


def test_an_old_result_is_read_before_waiting(worker, monkeypatch):
    result = add.delay(4, 4)
    assert result.get(timeout=10) == 8
    _redis_client().delete(_outcome_key(result.id))  # as after OUTCOME_TTL
    old = AsyncResult(result.id)
    old._sent_at = time.monotonic() - notify.FRESH - 1  # sent from here, long ago
    waits = []
    listen = notify.listen
    monkeypatch.setattr(notify, "listen", lambda task_id, outcome_only=False: waits.append(outcome_only) or
                        listen(task_id, outcome_only))
    assert old.get(timeout=5) == 8
    assert waits == []  # read the row, found it finished: neither subscribed nor blocked on the (expired) list
    pending = AsyncResult("never-sent")
    pending._sent_at = old._sent_at
    with pytest.raises(TimeoutError):
        pending.get(timeout=0.2)
    assert waits == [False]  # not finished: subscribed, not blocked on an outcome list


def test_retry_states_do_not_wake_a_fresh_waiter(worker):
    result = always_retry.delay("waiting")
    with pytest.raises(Exception):  # noqa: B017 - whatever it ends with, after its retries
        result.get(timeout=20)
    assert _redis_client().llen(_outcome_key(result.id)) == 1  # only the final outcome was pushed
