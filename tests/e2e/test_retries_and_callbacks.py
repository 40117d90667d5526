"""Retries, autoretry with backoff, Task hooks, link and link_error through a real worker."""

import pytest

from taskqueue import states
from tests.helpers import wait_until
from tests.models import Run
from tests.tasks import add, always_retry, fail, flaky, hooked, on_error_id, on_error_request


def test_max_retries_three_runs_four_times_then_fails(worker):
    res = always_retry.delay("r4")
    with pytest.raises(KeyError):
        res.get(timeout=15)
    assert Run.objects.filter(label="r4").count() == 4
    assert res.state == states.FAILURE and res.retries == 3


def test_autoretry_backoff_doubles_each_countdown(worker):
    """`flaky` has retry_backoff=0.25 (so 0.25, 0.5, 1, 2 s); retry_backoff=True's 1, 2, 4, 8 is the same
    formula with a factor of 1 (tests/unit/test_pure.py)."""
    from taskqueue.models import TaskResult

    res = flaky.delay("backoff")
    seen_retry = wait_until(lambda: TaskResult.objects.filter(task_id=res.id, state=states.RETRY).exists(),
                            timeout=10, message="RETRY state between attempts")
    assert seen_retry
    with pytest.raises(OSError):
        res.get(timeout=30)
    countdowns = [0.25, 0.5, 1.0, 2.0]
    for attempt, countdown in enumerate(countdowns, start=1):  # the countdown the worker chose for each retry
        assert f"Task tests.tasks.flaky[{res.id}] retry {attempt} in {countdown}:" in worker.output, worker.output
    starts = list(Run.objects.filter(label="backoff").order_by("started").values_list("started", flat=True))
    assert len(starts) == 5  # the first run and four retries
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    for gap, expected in zip(gaps, countdowns, strict=True):
        assert gap >= expected - 0.05, gaps  # each retry waited for its countdown


def test_hooks_run_in_the_worker(worker):
    assert hooked.delay(5).get(timeout=10) == 5
    with pytest.raises(ValueError):
        hooked.delay(-1).get(timeout=10)
    wait_until(lambda: Run.objects.filter(label__startswith="after_return").count() == 2, timeout=5,
               message="after_return for both calls")
    labels = set(Run.objects.values_list("label", flat=True))
    assert {"on_success:5", "on_failure:ValueError", "after_return:SUCCESS", "after_return:FAILURE"} <= labels


def test_link_gets_the_parents_return_value(worker):
    res = add.apply_async((2, 2), link=add.s(8))
    assert res.get(timeout=10) == 4
    child = wait_until(lambda: res.children, timeout=10, message="link child")[0]
    assert child.get(timeout=10) == 12
    assert child.parent.id == res.id


def test_errbacks_by_id_and_by_request(worker):
    res = fail.apply_async(link_error=[on_error_id.s(), on_error_request.s()])
    with pytest.raises(ValueError, match="boom"):
        res.get(timeout=10)
    wait_until(lambda: Run.objects.filter(label="errback-id", task_id=res.id).exists(), timeout=10,
               message="errback called with the failed id")
    assert Run.objects.filter(label="errback-request:ValueError", task_id=res.id).count() == 1


def test_errbacks_do_not_fire_on_retry(worker):
    res = always_retry.apply_async(("noerr",), link_error=on_error_id.s())
    with pytest.raises(KeyError):
        res.get(timeout=15)
    wait_until(lambda: Run.objects.filter(label="errback-id").exists(), timeout=10, message="errback")
    assert Run.objects.filter(label="errback-id").count() == 1


def test_failure_is_stored_with_traceback(worker):
    res = fail.delay()
    with pytest.raises(ValueError):
        res.get(timeout=10)
    assert "ValueError: boom" in res.traceback
    assert isinstance(res.result, ValueError) and res.failed() and res.ready()
    assert isinstance(res.get(propagate=False), ValueError)
