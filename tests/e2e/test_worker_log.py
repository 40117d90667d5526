"""The worker's console: a line per finished task at INFO (the default, as Celery's -l info), only
failures below it."""

import pytest

from tests.tasks import add, fail


@pytest.mark.any_database  # logging, not storage: one database is enough
def test_a_worker_at_its_default_level_logs_each_outcome(taskqueue_worker):
    worker = taskqueue_worker("-c", "1", "-Q", "log-info", "--pool", "solo")
    ok = add.apply_async((2, 3), queue="log-info")
    assert ok.get(timeout=10) == 5
    bad = fail.apply_async(("boom",), queue="log-info")
    with pytest.raises(Exception, match="boom"):
        bad.get(timeout=10)
    assert worker.wait_for_output(f"Task tests.tasks.add[{ok.id}] succeeded in ", timeout=5), worker.output
    success = next(line for line in worker.lines if f"add[{ok.id}] succeeded" in line)
    assert " INFO/" in success and success.rstrip().endswith("s: 5") and success.count(ok.id) == 1
    assert worker.wait_for_output(f"Task tests.tasks.fail[{bad.id}] failed in ", timeout=5), worker.output
    failure = next(line for line in worker.lines if f"fail[{bad.id}] failed" in line)
    assert " ERROR/" in failure and "boom" in failure


@pytest.mark.any_database
def test_a_worker_at_warning_logs_failures_only(taskqueue_worker):
    worker = taskqueue_worker("-c", "1", "-Q", "log-default", "--pool", "solo", "-l", "warning")
    assert add.apply_async((1, 1), queue="log-default").get(timeout=10) == 2
    bad = fail.apply_async(queue="log-default")
    with pytest.raises(Exception, match="boom"):
        bad.get(timeout=10)
    assert worker.wait_for_output(f"fail[{bad.id}] failed in ", timeout=5), worker.output
    assert "succeeded in" not in worker.output

