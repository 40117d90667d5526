"""Celery's results API and calling conventions against a real worker (and in eager mode where the
behaviour is the caller's): callbacks of get/join, collect(), results returned by tasks, apply(),
and the task options that change what a worker does (expires, retry_kwargs, throws, typing)."""

import logging

import pytest

from taskqueue import AsyncResult, GroupResult, group, result_from_tuple, states
from taskqueue.exceptions import TaskRevokedError
from tests.models import Run
from tests.tasks import (
    add,
    echo,
    expired_by_default,
    fail,
    fans_out,
    ported,
    raises_expected,
    retried_by_kwargs,
    sends_square,
    square,
    untyped,
    whoami,
)


def test_get_calls_back_with_the_task_id_and_value(mode):
    seen = []
    res = add.delay(2, 2)
    assert res.get(timeout=10, callback=lambda task_id, value: seen.append((task_id, value))) == 4
    assert seen == [(res.id, 4)]
    failed = fail.delay()
    with pytest.raises(ValueError):
        failed.get(timeout=10, callback=lambda *call: seen.append(call))
    assert len(seen) == 1  # re-raised first, as Celery: the callback is not called
    assert isinstance(failed.get(timeout=10, propagate=False, callback=lambda *call: seen.append(call)),
                      ValueError)
    assert seen[1][0] == failed.id and isinstance(seen[1][1], ValueError)


def test_join_calls_back_for_each_member_and_returns_nothing(mode):
    res = group(add.s(i, i) for i in range(4))()
    seen = {}
    assert res.join(timeout=10, callback=seen.__setitem__) == []
    assert seen == {member.id: 2 * i for i, member in enumerate(res.results)}
    again = {}
    assert res.get(timeout=10, callback=again.__setitem__) == [] and again == seen


def test_a_returned_async_result_is_stored_as_its_tuple(mode):
    res = sends_square.delay(3)
    value = AsyncResult(res.id).get(timeout=10)  # read back from the stored row
    assert value == AsyncResult(value[0][0]).as_tuple()  # ((id, None), None), as Celery stores it
    assert result_from_tuple(value).get(timeout=10) == 9
    # The caller's result gives the tuple too, except an eager run's, which holds the very object
    # the task returned (as Celery's EagerResult does).
    returned = res.get(timeout=10)
    assert returned == value if mode == "worker" else returned.as_tuple() == value


def test_a_returned_group_result_is_stored_as_its_tuple(mode):
    res = fans_out.delay(3)
    restored = result_from_tuple(AsyncResult(res.id).get(timeout=10))
    assert isinstance(restored, GroupResult) and len(restored) == 3
    assert [result_from_tuple(v).get(timeout=10) for v in restored.get(timeout=10)] == [0, 1, 4]


def test_collect_walks_the_result_graph(mode):
    res = fans_out.delay(4)
    collected = list(res.collect(timeout=10))
    assert collected[0][0] == res
    leaves = [value for _, value in collected if isinstance(value, int)]
    assert sorted(leaves) == [0, 1, 4, 9]
    squares = [node for node, value in collected if isinstance(value, int)]
    assert all(node.get(timeout=1) == value for node, value in collected if isinstance(value, int))
    assert len({node.id for node, _ in collected if node.id}) == len(collected)  # each node once
    assert len(squares) == 4


def test_collect_does_not_follow_a_plain_value_shaped_like_a_result_tuple(mode):
    # Celery follows what the task sent (its children), not whatever its return value looks like
    shaped = [["no-such-task", None], None]
    res = echo.delay(shaped)
    assert [(node.id, value) for node, value in res.collect(timeout=5)] == [(res.id, shaped)]


def test_apply_keeps_a_failure_on_its_result(transactional_db):
    res = fail.apply()
    assert res.state == states.FAILURE and res.failed() and res.ready()
    assert isinstance(res.result, ValueError) and "ValueError: boom" in res.traceback
    with pytest.raises(ValueError, match="boom"):
        res.get()
    assert whoami.apply().get()["is_eager"] is True


def test_apply_throw_reraises_or_keeps_the_failure(transactional_db, settings):
    with pytest.raises(ValueError, match="boom"):
        fail.apply(throw=True)
    settings.TASKQUEUE_TASK_EAGER_PROPAGATES = True
    res = fail.apply(throw=False, logfile=None, loglevel=logging.INFO)
    assert res.state == states.FAILURE and isinstance(res.result, ValueError)
    with pytest.raises(ValueError):
        fail.apply()  # throw=None: TASKQUEUE_TASK_EAGER_PROPAGATES decides, as Celery's default


def test_task_expires_is_the_default_expiry_of_every_call(mode):
    res = expired_by_default.delay()
    with pytest.raises(TaskRevokedError):
        res.get(timeout=10)
    assert res.state == states.REVOKED
    assert expired_by_default.apply_async(expires=60).get(timeout=10) == "ran"


def test_retry_kwargs_go_to_the_autoretry(mode):
    res = retried_by_kwargs.delay("retry-kwargs")
    with pytest.raises(KeyError):
        res.get(timeout=10)
    assert Run.objects.filter(label="retry-kwargs").count() == 2  # max_retries=1 from retry_kwargs


def test_expected_exceptions_are_logged_at_info(transactional_db, caplog):
    caplog.set_level(logging.INFO, logger="taskqueue.worker")
    res = raises_expected.apply(("expected",))
    assert res.state == states.FAILURE and isinstance(res.result, KeyError)
    records = [r for r in caplog.records if res.id in r.getMessage()]
    assert [r.levelno for r in records] == [logging.INFO] and "raised expected" in records[0].getMessage()
    assert records[0].exc_info is None
    caplog.clear()
    fail.apply()
    assert [r.levelno for r in caplog.records if r.name == "taskqueue.worker"] == [logging.ERROR]


def test_typing_false_leaves_the_check_to_the_run(mode):
    res = untyped.delay(1, 2, 3)  # no TypeError here: typing=False
    with pytest.raises(TypeError):
        res.get(timeout=10)


def test_celery_options_on_tasks_and_calls_run(mode):
    assert ported.delay(5).get(timeout=10) == 5
    res = square.apply_async((4,), retry=True, retry_policy={"max_retries": 2}, compression="zlib",
                             serializer="json", shadow="shadowed", exchange="", routing_key="default",
                             add_to_parent=True, publisher=None, time_limit=30, soft_time_limit=20,
                             priority=3, headers={"trace": "x"})
    assert res.get(timeout=10) == 16
