"""rate_limit: one token bucket per task name across all workers, changeable while they run."""

import pytest

from taskqueue import control, task
from taskqueue.ratelimits import parse
from tests.helpers import start_workers
from tests.models import Run
from tests.tasks import limited_at_run_time, rate_limited


def _starts(prefix: str) -> list[float]:
    return sorted(Run.objects.filter(label__startswith=prefix).values_list("started", flat=True))


@pytest.mark.any_database  # two workers on one SQLite file lock each other out at start-up
def test_a_rate_limit_holds_across_workers_and_drops_nothing(transactional_db):
    from taskqueue.models import TaskResult

    # Each worker has a queue of its own, so both run six for certain (on one shared queue the worker
    # that handed a message back for later was often first to take it again, and ran all twelve).
    workers = start_workers(("-c", "2", "-Q", "limited-one", "--hostname", "rl-one@tests"),
                            ("-c", "2", "-Q", "limited-two", "--hostname", "rl-two@tests"))
    try:
        results = [rate_limited.apply_async((f"rl-{i}",), queue=("limited-one", "limited-two")[i % 2])
                   for i in range(12)]
        assert [r.get(timeout=30) for r in results] == [f"rl-{i}" for i in range(12)]
    finally:
        for worker in workers:
            worker.terminate()
    starts = _starts("rl-")
    # a bucket per worker would let each run its six at 5/s, the twelve in about half the time one
    # shared bucket allows
    ran_on = set(TaskResult.objects.filter(task_id__in=[r.id for r in results]).values_list("worker", flat=True))
    assert ran_on == {"rl-one@tests", "rl-two@tests"}, ran_on
    # 5/s: a token every 0.2 s, whichever worker takes it; measured from the first start to the last,
    # so only the two ends carry the jitter between taking a token and starting the task (a bucket per
    # worker measured 1.4 to 1.7 s for these twelve)
    assert starts[-1] - starts[0] >= 11 * 0.2 - 0.2, starts


def test_a_rate_set_while_workers_run_applies_to_any_task(taskqueue_worker):
    taskqueue_worker("-c", "2", "-Q", "runtime-limited")
    control.rate_limit(limited_at_run_time.name, "4/s")
    results = [limited_at_run_time.apply_async((f"rt-{i}",), queue="runtime-limited") for i in range(4)]
    assert [r.get(timeout=30) for r in results] == [f"rt-{i}" for i in range(4)]
    starts = _starts("rt-")
    assert starts[-1] - starts[0] >= 3 * 0.25 - 0.1, starts


@pytest.mark.any_broker
@pytest.mark.any_database
def test_rates_parse_as_celery_writes_them():
    assert parse("10/s") == 10 and parse("120/m") == 2 and parse("3600/h") == 1 and parse(5) == 5
    assert parse(None) is None and parse("0") is None and parse("") is None
    with pytest.raises(ValueError, match="invalid rate_limit"):
        task(rate_limit="ten a minute")(lambda: None)
